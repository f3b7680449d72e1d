"""Learning tests for the tabular agents on their shipped configs, judged exactly.

The greedy policy of the final Q-table is scored by ``rlfoundry.mdp.evaluate_policy_exact``
(a sum over the transition table under the env's time limit, no sampling), so "within
2% of the optimum" is a statement about the policy, not about evaluation noise.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlfoundry.algos.tabular import common as tabular
from rlfoundry.api import resolve_config
from rlfoundry.envs.evaluation import make_env
from rlfoundry.mdp import evaluate_policy_exact, optimal_return
from rlfoundry.runtime.config import to_dict
from rlfoundry.runtime.run import Run

SEEDS = range(5)
GRID = "rlfoundry/GridWorld-v0"
# env id -> (reference optimum, allowed relative gap); GridWorld must be solved exactly.
TARGETS = {
    "FrozenLake-v1": (0.744, 0.02),
    "Taxi-v4": (7.93, 0.02),
    "CliffWalking-v1": (-13.0, 0.02),
    GRID: (0.80, 0.0),
}


def greedy_exact_return(algo: str, env_id: str, seed: int, tmp_path) -> float:
    """Train ``algo`` with its shipped config for ``env_id`` and score its greedy policy."""
    module, cfg = resolve_config(algo, env=env_id, seed=seed)
    out = tmp_path / f"{algo}-{seed}"
    with Run(out, cfg.total_steps, progress=False, tensorboard=False) as run:
        module.train(cfg, run)
    policy = tabular.greedy_policy(tabular.load_q(out))
    return evaluate_policy_exact(make_env(env_id), policy)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", list(TARGETS))
def test_qlearning_greedy_policy_is_within_2_percent_of_the_optimum(env_id, tmp_path):
    reference, rel = TARGETS[env_id]
    best = optimal_return(make_env(env_id))
    assert best == pytest.approx(reference, abs=0.01)  # the yardstick itself
    rets = [greedy_exact_return("qlearning", env_id, seed, tmp_path) for seed in SEEDS]
    passed = [r >= best - rel * abs(best) - 1e-9 for r in rets]
    print(f"\n{env_id}: optimum {best:.4f}, greedy returns {np.round(rets, 4)}, "
          f"{sum(passed)}/{len(rets)} within {rel:.0%}")  # fmt: skip
    assert sum(passed) >= 4, f"{env_id}: only {sum(passed)}/5 seeds within {rel:.0%}: {rets}"


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sarsa", "expected_sarsa", "dyna_q"])
def test_other_agents_solve_the_gridworld(algo, tmp_path):
    rets = [greedy_exact_return(algo, GRID, seed, tmp_path) for seed in SEEDS]
    assert sum(np.isclose(rets, 0.8)) >= 4, rets


@pytest.mark.slow
def test_dyna_q_reaches_the_optimum_in_fewer_real_steps_than_qlearning():
    # Same shipped settings except the planning, so real env steps are the only difference.
    _, q_cfg = resolve_config("qlearning", env=GRID)
    _, d_cfg = resolve_config("dyna_q", env=GRID)
    d_fields = to_dict(d_cfg)
    assert d_fields.pop("planning_steps") > 0
    assert d_fields == to_dict(q_cfg)

    best = optimal_return(make_env(GRID))
    needed = {}
    for algo in ("qlearning", "dyna_q"):
        needed[algo] = []
        for seed in SEEDS:
            module, cfg = resolve_config(algo, env=GRID, seed=seed)
            steps, values = tabular.exact_learning_curve(module, cfg, every=10)
            needed[algo].append(tabular.steps_to_optimum(steps, values, best))
    print(f"\nreal steps to a lasting optimum: {needed}")
    q_mean, d_mean = np.mean(needed["qlearning"]), np.mean(needed["dyna_q"])
    assert np.isfinite(d_mean), needed
    assert d_mean < 0.7 * q_mean, needed
