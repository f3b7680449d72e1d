"""The classic half's contract: every gym algorithm module has the same names and its
check(cfg) accepts its default env, and renamed config keys still load (with a warning).
The layering itself (cycles, trainers importing trainers, apps) is tests/test_architecture.py."""

from __future__ import annotations

import importlib

import pytest
from needs import IN_CI

from rlfoundry import registry
from rlfoundry.runtime.config import build_config

TRAINERS = {entry.name: entry.module for entry in registry.entries("gym")}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_gym_algorithm_has_the_contract_and_checks_its_default_env(name):
    module = importlib.import_module(TRAINERS[name])
    for attr in ("Config", "check", "check_env", "train", "load_policy"):
        assert callable(getattr(module, attr, None)), f"{name} has no {attr}"
    cfg = build_config(module.Config)
    try:
        module.check(cfg)  # builds the default env and checks its spaces
    except Exception as err:  # an optional env package missing on this machine
        if "install" not in str(err) or IN_CI:  # CI installs every extra: fail there
            raise
        pytest.skip(str(err))


@pytest.mark.parametrize(
    ("name", "old", "new", "value"),
    [
        ("ppo", "batch_size", "minibatch_size", 32),
        ("selfplay_ppo", "batch_size", "minibatch_size", 32),
        ("dqn", "batch_size", "minibatch_size", 16),
        ("dqn", "lr", "learning_rate", 0.01),
        ("vpg", "lr", "learning_rate", 0.02),
        ("vpg", "value_lr", "value_learning_rate", 0.03),
        ("pets", "lr", "learning_rate", 0.04),
        ("qlearning", "lr", "learning_rate", 0.2),
        ("dyna_q", "lr", "learning_rate", 0.3),
    ],
)
def test_old_config_keys_load_with_a_warning(name, old, new, value):
    module = importlib.import_module(TRAINERS[name])
    with pytest.warns(FutureWarning, match=f"'{old}' is now '{new}'"):
        cfg = build_config(module.Config, {old: value})
    assert getattr(cfg, new) == value
