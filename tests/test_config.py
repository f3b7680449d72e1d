from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from rlfoundry.errors import ConfigError
from rlfoundry.runtime.config import (
    build_config,
    describe,
    field_docs,
    load_yaml,
    parse_overrides,
    save_yaml,
    to_dict,
)


@dataclass
class Cfg:
    env_id: str = "CartPole-v1"
    """Gymnasium id."""
    lr: float = 1e-3
    """Learning rate."""
    steps: int = 100
    """Steps to run."""
    norm: bool = False
    """Normalise observations."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden layer sizes."""
    kind: Literal["a", "b"] = "a"
    """A choice."""
    target: float | None = None
    """Optional target."""
    kwargs: dict = field(default_factory=dict)
    """Extra env kwargs."""


def test_field_docs_read_from_string_literals():
    docs = field_docs(Cfg)
    assert docs["lr"] == "Learning rate."
    assert set(docs) == {"env_id", "lr", "steps", "norm", "hidden", "kind", "target", "kwargs"}
    assert [row[0] for row in describe(Cfg)][:2] == ["env_id", "lr"]


def test_overrides_are_coerced_to_field_types():
    cfg = build_config(
        Cfg,
        {"lr": "0.5"},
        parse_overrides(
            [
                "steps=1e3",
                "norm=true",
                "hidden=32,32",
                "target=none",
                "kind=b",
                "kwargs={is_slippery: false}",
            ]
        ),
    )
    assert cfg.lr == 0.5 and cfg.steps == 1000 and cfg.norm is True
    assert cfg.hidden == (32, 32) and cfg.target is None and cfg.kind == "b"
    assert cfg.kwargs == {"is_slippery": False}


def test_later_sources_win():
    cfg = build_config(Cfg, {"lr": 0.1}, {"lr": 0.2}, None)
    assert cfg.lr == 0.2


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="Unknown config key 'lrr'.*did you mean lr"):
        build_config(Cfg, {"lrr": 1})


@pytest.mark.parametrize(
    "item,match",
    [
        ("steps=1.5", "needs a int"),
        ("norm=maybe", "needs a bool"),
        ("kind=c", "must be one of"),
        ("lr=fast", "needs a float"),
    ],
)
def test_bad_values_are_named(item, match):
    with pytest.raises(ConfigError, match=match):
        build_config(Cfg, parse_overrides([item]))


def test_override_without_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["lr"])


def test_yaml_round_trip(tmp_path):
    cfg = build_config(Cfg, {"hidden": [8], "target": 3.0})
    save_yaml(tmp_path / "c.yaml", to_dict(cfg))
    again = build_config(Cfg, load_yaml(tmp_path / "c.yaml"))
    assert again == cfg


def test_missing_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(tmp_path / "list.yaml")


def test_resolve_config_precedence(tmp_path):
    """Defaults < tuned config for (algo, env) < config file < overrides < flags."""
    from rlfoundry.runtime.rundir import resolve_config

    _, cfg = resolve_config("ppo", env="CartPole-v1")
    assert cfg.num_steps == 32 and cfg.gamma == 0.98 and cfg.total_steps == 100_000  # tuned
    path = tmp_path / "c.yaml"
    save_yaml(path, {"algo": "ppo", "gamma": 0.9, "num_steps": 64, "rlfoundry_version": "0"})
    _, cfg = resolve_config(
        "ppo", env="CartPole-v1", steps=500, config=path, overrides={"num_steps": 16}
    )
    assert (cfg.gamma, cfg.num_steps, cfg.total_steps) == (0.9, 16, 500)
    _, cfg = resolve_config("llm-sft", steps=7, overrides={"task": "format"})
    assert cfg.task == "format" and cfg.total_steps == 7
