"""Exact solvers for tabular envs: value/policy iteration and exact expected returns."""

from rlfoundry.mdp.solvers import (
    DEFAULT_SOLVE_GAMMA,
    FiniteHorizonSolution,
    Solution,
    TabularModel,
    evaluate_policy_exact,
    expected_return,
    finite_horizon_optimal,
    greedy,
    initial_distribution,
    optimal_return,
    policy_iteration,
    tabular_model,
    time_limit,
    value_iteration,
)

__all__ = [
    "DEFAULT_SOLVE_GAMMA",
    "FiniteHorizonSolution",
    "Solution",
    "TabularModel",
    "evaluate_policy_exact",
    "expected_return",
    "finite_horizon_optimal",
    "greedy",
    "initial_distribution",
    "optimal_return",
    "policy_iteration",
    "tabular_model",
    "time_limit",
    "value_iteration",
]
