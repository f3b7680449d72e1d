"""rlfoundry's config, in Stable-Baselines3's words: what every SB3 comparison shares.

    kwargs = sb3_kwargs("ppo", cfg)               # SB3 constructor arguments meaning cfg
    model = DQN("MlpPolicy", env, **sb3_kwargs("dqn", cfg))
    match_init(model, cfg)                        # cfg.orthogonal_init on SB3's DQN too

Used by ``classic.py``, ``apps_sb3.py`` and ``sac_td3_mujoco.py``, so that one translation, not two copies that
drift apart, decides what the peer runs. The differences that remain are listed in
``benchmarks/README.md``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def sb3_kwargs(algo: str, cfg: Any, act_dim: int | None = None) -> dict[str, Any]:
    """The SB3 constructor arguments that mean what rlfoundry's ``cfg`` means (TD3 needs
    ``act_dim``, the action width, for its Gaussian exploration noise)."""
    if algo in ("sac", "td3"):
        # both work in [-1, 1] actions mapped onto the env's bounds, and both count
        # gradient steps the same way, so the values carry over one for one
        common = {
            "learning_rate": cfg.learning_rate,
            "buffer_size": cfg.buffer_size,
            "learning_starts": cfg.learning_starts,
            "batch_size": cfg.minibatch_size,
            "tau": cfg.tau,
            "gamma": cfg.gamma,
            "train_freq": cfg.train_freq,
            "gradient_steps": cfg.gradient_steps,
            "policy_kwargs": {"net_arch": list(cfg.hidden)},  # ReLU, actor and each critic
        }
        if algo == "sac":
            auto = cfg.ent_coef == "auto"
            return {
                **common,
                "ent_coef": f"auto_{cfg.ent_coef_init}" if auto else float(cfg.ent_coef),
                "target_entropy": cfg.target_entropy,
                "target_update_interval": cfg.target_update_interval,
            }
        from stable_baselines3.common.noise import NormalActionNoise

        if act_dim is None:
            raise ValueError("TD3's exploration noise needs act_dim")
        sigma = cfg.exploration_noise * np.ones(act_dim)
        return {
            **common,
            "policy_delay": cfg.policy_delay,
            "target_policy_noise": cfg.target_policy_noise,
            "target_noise_clip": cfg.target_noise_clip,
            "action_noise": NormalActionNoise(mean=np.zeros(act_dim), sigma=sigma),
        }
    if algo == "dqn":
        return {
            "learning_rate": cfg.learning_rate,
            "buffer_size": cfg.buffer_size,
            "learning_starts": cfg.learning_starts,
            "batch_size": cfg.minibatch_size,
            "tau": cfg.tau,
            "gamma": cfg.gamma,
            "train_freq": cfg.train_freq,
            "gradient_steps": cfg.gradient_steps,
            "target_update_interval": cfg.target_update_interval,
            "exploration_fraction": cfg.exploration_fraction,
            "exploration_initial_eps": cfg.epsilon_start,
            "exploration_final_eps": cfg.epsilon_end,
            "max_grad_norm": cfg.max_grad_norm,
            "policy_kwargs": {"net_arch": list(cfg.hidden)},  # ReLU: SB3's DQN default
        }
    if algo == "ppo":
        lr, clip = cfg.learning_rate, cfg.clip_coef
        act = torch.nn.Tanh if cfg.activation == "tanh" else torch.nn.ReLU
        return {
            "learning_rate": (lambda p: lr * p) if cfg.anneal_lr else lr,
            "n_steps": cfg.num_steps,
            "batch_size": cfg.minibatch_size,
            "n_epochs": cfg.update_epochs,
            "gamma": cfg.gamma,
            "gae_lambda": cfg.gae_lambda,
            "clip_range": (lambda p: clip * p) if cfg.anneal_clip else clip,
            "clip_range_vf": clip if cfg.clip_vloss else None,
            "normalize_advantage": cfg.norm_adv,
            "ent_coef": cfg.ent_coef,
            # SB3's value loss is MSE, rlfoundry's 0.5 * MSE (CleanRL's): same weight on
            # the gradient when SB3's vf_coef is half of rlfoundry's.
            "vf_coef": cfg.vf_coef / 2,
            "max_grad_norm": cfg.max_grad_norm,
            "target_kl": cfg.target_kl,
            "policy_kwargs": {
                "net_arch": {"pi": list(cfg.hidden), "vf": list(cfg.hidden)},
                "activation_fn": act,
                "log_std_init": cfg.log_std_init,
                # rlfoundry's PPO is always orthogonal (CleanRL); SB3's default, said here
                "ortho_init": True,
            },
        }
    raise ValueError(f"no SB3 translation for {algo}")


def match_init(model: Any, cfg: Any) -> None:
    """Give SB3's DQN rlfoundry's initialisation when ``cfg.orthogonal_init`` is set.

    SB3's DQN policy has no ``ortho_init`` option (only its actor-critic policies do), so
    its Q-network is re-initialised in place the way :func:`rlfoundry.algos.nets.mlp`
    does it (orthogonal, gain sqrt(2) on hidden layers and 1 on the output, zero biases),
    and the target network copies it, as at construction. Without the option both keep
    PyTorch's default init. PPO needs nothing: both are orthogonal (:func:`sb3_kwargs`).
    """
    if not getattr(cfg, "orthogonal_init", False) or not hasattr(model, "q_net_target"):
        return
    layers = [m for m in model.q_net.q_net if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for i, layer in enumerate(layers):
            torch.nn.init.orthogonal_(layer.weight, 1.0 if i == len(layers) - 1 else math.sqrt(2))
            torch.nn.init.zeros_(layer.bias)
    model.q_net_target.load_state_dict(model.q_net.state_dict())
