"""The classic half's contract and layering: every gym algorithm module has the same
names, renamed config keys still load, no trainer imports a trainer, and nothing below
the applications imports them (not even inside a function)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from rlfoundry.runtime.config import build_config

SRC = Path(__file__).resolve().parents[2] / "src" / "rlfoundry"


def _defines(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.parse(path.read_text()).body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef))
    }


def _trainers() -> dict[str, str]:
    """Short name -> module of every file under algos/ that defines ``Config`` and ``train``
    (found from the source, so the list cannot go stale)."""
    out = {}
    for path in sorted((SRC / "algos").rglob("*.py")):
        if {"Config", "train"} <= _defines(path):
            out[path.stem] = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    return out


TRAINERS = _trainers()


def _imports(path: Path) -> set[str]:
    """Every module named by an import anywhere in ``path`` (functions included)."""
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def test_the_trainers_are_found():
    assert len(TRAINERS) >= 12 and {"ppo", "a2c", "dqn", "qlearning", "pets"} <= set(TRAINERS)


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_every_gym_algorithm_has_the_contract_and_checks_its_default_env(name):
    module = importlib.import_module(TRAINERS[name])
    for attr in ("Config", "check", "check_env", "train", "load_policy"):
        assert callable(getattr(module, attr, None)), f"{name} has no {attr}"
    cfg = build_config(module.Config)
    try:
        module.check(cfg)  # builds the default env and checks its spaces
    except Exception as err:  # an optional env package missing on this machine
        if "install" not in str(err):
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


def test_no_trainer_imports_another_trainer():
    trainers = set(TRAINERS.values())
    for path in sorted((SRC / "algos").rglob("*.py")):
        me = _module_name(path)
        others = {m for m in _imports(path) if m in trainers and m != me}
        assert not others, f"{path.relative_to(SRC)} imports the trainer(s) {sorted(others)}"


def test_nothing_below_the_apps_imports_them():
    for layer in ("core", "runtime", "envs", "algos", "mdp"):
        for path in sorted((SRC / layer).rglob("*.py")):
            bad = {
                m
                for m in _imports(path)
                if m == "rlfoundry.apps" or m.startswith("rlfoundry.apps.")
            }
            assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_classic_source_files_stay_under_500_lines():
    for layer in ("algos", "envs", "mdp", "experiments", "runtime", "apps"):
        for path in sorted((SRC / layer).rglob("*.py")):
            n = len(path.read_text().splitlines())
            assert n <= 500, f"{path.relative_to(SRC)} has {n} lines"
