"""Every tuned config shipped for a deep algorithm (and Q-learning's FrozenLake8x8) builds
its algorithm's Config with exactly the file's values and passes the algorithm's check on
the env it names, so `rlfoundry train ALGO --env ENV` starts from it."""

from importlib import resources

import pytest

from rlfoundry import api
from rlfoundry.runtime.config import load_yaml

ALGOS = ("dqn", "ppo", "a2c", "sac", "td3", "qlearning")


def shipped():
    for algo in ALGOS:
        folder = resources.files("rlfoundry") / "configs" / algo
        for res in sorted(folder.iterdir(), key=lambda r: r.name):
            if res.name.endswith(".yaml") and not res.name.startswith("rlfoundry_"):
                yield algo, res.name.removesuffix(".yaml")


@pytest.mark.parametrize(("algo", "env_id"), list(shipped()))
def test_shipped_config_builds_and_fits_its_env(algo, env_id):
    if env_id.endswith("-v5"):
        pytest.importorskip("mujoco")
    values = load_yaml(resources.files("rlfoundry") / "configs" / algo / f"{env_id}.yaml")
    values.pop("tuned_for", None)
    module, cfg = api.resolve_config(algo, env=env_id)
    for key, value in values.items():
        got = getattr(cfg, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    module.check(cfg)


def test_the_zoo_set_has_shipped_configs():
    """rl-zoo's classic-control and Box2D set, for the algorithms that suit each env."""
    have = set(shipped())
    for algo, env_id in [
        ("dqn", "MountainCar-v0"),
        ("ppo", "MountainCar-v0"),
        ("a2c", "Acrobot-v1"),
        ("ppo", "LunarLanderContinuous-v3"),
        ("sac", "MountainCarContinuous-v0"),
        ("sac", "LunarLanderContinuous-v3"),
        ("td3", "LunarLanderContinuous-v3"),
        ("sac", "BipedalWalker-v3"),
        ("td3", "BipedalWalker-v3"),
        ("ppo", "BipedalWalker-v3"),
        ("qlearning", "FrozenLake8x8-v1"),
    ]:
        assert (algo, env_id) in have


@pytest.mark.slow
def test_qlearning_shipped_config_nears_the_optimum_on_frozenlake8x8(tmp_path):
    """Issue 16: the defaults (gamma 0.99) cap the greedy policy at 0.863. With the shipped
    config, seeds 0-4 get an exact return of 0.886-0.889 (benchmarks/off_tuned.py); the
    test asks seed 0 for 2% of the optimum 0.886 (~12 CPU s)."""
    s = api.train("qlearning", env="FrozenLake8x8-v1", seed=0, out=tmp_path / "r", progress=False)
    assert s["optimal_return"] == pytest.approx(0.8857, abs=1e-3)
    assert s["exact_return"] >= 0.98 * 0.886
