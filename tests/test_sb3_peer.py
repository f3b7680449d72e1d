"""The SB3 translation every comparison shares (benchmarks/sb3_peer.py): the peer gets
rlfoundry's value-loss weight and initialisation, not SB3's defaults."""

from __future__ import annotations

import math

import torch
from sb3_peer import match_init, sb3_kwargs
from stable_baselines3 import DQN

from rlfoundry.api import resolve_config


def _orthogonal(w: torch.Tensor, gain: float) -> bool:
    """Rows (or columns, whichever are fewer) orthonormal up to ``gain``."""
    m = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
    return torch.allclose(m, gain**2 * torch.eye(m.shape[0]), atol=1e-4)


def test_ppo_value_weight_is_halved_for_sb3s_mse() -> None:
    _, cfg = resolve_config("ppo", env="CartPole-v1")
    kw = sb3_kwargs("ppo", cfg)
    assert kw["vf_coef"] == cfg.vf_coef / 2  # SB3: MSE; rlfoundry: 0.5 * MSE
    assert kw["policy_kwargs"]["ortho_init"] is True  # rlfoundry's PPO is orthogonal


def test_match_init_gives_sb3_dqn_rlfoundrys_orthogonal_init() -> None:
    _, cfg = resolve_config("dqn", env="Acrobot-v1", overrides={"hidden": [32, 16]})
    assert cfg.orthogonal_init  # the shipped Acrobot config sets it
    model = DQN("MlpPolicy", "Acrobot-v1", device="cpu", seed=0, **sb3_kwargs("dqn", cfg))
    layers = [m for m in model.q_net.q_net if isinstance(m, torch.nn.Linear)]
    assert not _orthogonal(layers[0].weight.detach(), math.sqrt(2))  # SB3's default init
    match_init(model, cfg)
    gains = [math.sqrt(2), math.sqrt(2), 1.0]  # hidden layers sqrt(2), output 1 (nets.mlp)
    for layer, gain in zip(layers, gains):
        assert _orthogonal(layer.weight.detach(), gain)
        assert not layer.bias.any()
    for a, b in zip(model.q_net.parameters(), model.q_net_target.parameters()):
        assert torch.equal(a, b)  # the target starts as a copy, as at construction


def test_match_init_leaves_default_init_when_not_asked() -> None:
    _, cfg = resolve_config("dqn", env="CartPole-v1", overrides={"hidden": [32]})
    assert not cfg.orthogonal_init
    model = DQN("MlpPolicy", "CartPole-v1", device="cpu", seed=0, **sb3_kwargs("dqn", cfg))
    before = [p.clone() for p in model.q_net.parameters()]
    match_init(model, cfg)
    assert all(torch.equal(a, b) for a, b in zip(before, model.q_net.parameters()))


def test_sac_and_td3_get_the_shipped_mujoco_values_and_network_sizes() -> None:
    """SB3's SAC / TD3 built from the translation of the shipped HalfCheetah-v5 configs
    (the zoo's MuJoCo defaults) hold the same values and layer sizes as rlfoundry's (built
    on Pendulum-v1: the sizes do not depend on the env)."""
    from stable_baselines3 import SAC, TD3

    _, sac_cfg = resolve_config("sac", env="HalfCheetah-v5", steps=1000)
    sac = SAC("MlpPolicy", "Pendulum-v1", device="cpu", **sb3_kwargs("sac", sac_cfg))
    assert (sac.learning_starts, sac.batch_size, sac.tau, sac.gamma) == (10_000, 256, 0.005, 0.99)
    assert sac.target_entropy == -1.0 and math.isclose(sac.log_ent_coef.exp().item(), 1.0)
    widths = [m.out_features for m in sac.actor.latent_pi if isinstance(m, torch.nn.Linear)]
    assert widths == list(sac_cfg.hidden) == [256, 256]

    _, td3_cfg = resolve_config("td3", env="HalfCheetah-v5", steps=1000)
    kw = sb3_kwargs("td3", td3_cfg, act_dim=6)
    assert kw["action_noise"]._sigma.tolist() == [0.1] * 6  # the zoo's noise_std
    td3 = TD3("MlpPolicy", "Pendulum-v1", device="cpu", **{**kw, "action_noise": None})
    assert (td3.learning_starts, td3.policy_delay, td3.learning_rate) == (10_000, 2, 1e-3)
    widths = [m.out_features for m in td3.actor.mu if isinstance(m, torch.nn.Linear)]
    assert widths == [400, 300, 1]
