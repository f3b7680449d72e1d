"""The worked examples of docs/CONTRIBUTING.md are real: the gym algorithm and the LLM
stage are copied out of the document, registered with their registry line as written,
and trained for a few steps through `rlfoundry.api.train` (and the CLI)."""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import pytest
import torch
from needs import need

from rlfoundry import registry
from rlfoundry.api import train
from rlfoundry.cli.main import main
from rlfoundry.errors import ConfigError, EnvError
from rlfoundry.runtime.run import CHECKPOINT, load_checkpoint_file

DOC = Path(__file__).resolve().parents[1] / "docs" / "CONTRIBUTING.md"


def example(name: str) -> str:
    """The fenced python block right after `<!-- example: NAME -->`."""
    found = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert found, f"no example '{name}' in {DOC}"
    return found.group(1)


def install(tmp_path, monkeypatch, module: str, code: str, line: str) -> registry.Entry:
    """Write the example's file as module `module` and register its registry line."""
    (tmp_path / f"{module}.py").write_text(example(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    entry = eval(example(line).strip().rstrip(","), dict(vars(registry)))  # the line as written
    entry = dataclasses.replace(entry, module=module)
    monkeypatch.setitem(registry.REGISTRY, entry.name, entry)
    return entry


def _params(out, prefix=""):
    tensors, _ = load_checkpoint_file(out / CHECKPOINT)
    return {k: v for k, v in tensors.items() if k.startswith(prefix) and not k.startswith("_")}


def test_the_gym_algorithm_example(tmp_path, monkeypatch, capsys):
    entry = install(
        tmp_path, monkeypatch, "contrib_mc_control", "gym-algorithm", "gym-registry-line"
    )
    assert (entry.name, entry.kind) == ("mc_control", "gym")
    kw = dict(env="FrozenLake-v1", steps=600, progress=False, overrides={"eval_episodes": 5})
    s = train("mc_control", out=tmp_path / "a", **kw)
    assert s["status"] == "finished" and s["steps"] >= 600 and s["episodes"] > 0
    assert 0.0 <= s["eval_mean_return"] <= 1.0
    assert (tmp_path / "a" / "learning_curve.png").is_file()
    # stopped half-way and resumed: the same Q-table
    assert (
        train("mc_control", out=tmp_path / "b", stop_at_step=300, **kw)["status"] == "interrupted"
    )
    train(resume=tmp_path / "b", progress=False)
    a, b = _params(tmp_path / "a"), _params(tmp_path / "b")
    assert a.keys() == b.keys() == {"q"} and torch.equal(a["q"], b["q"])
    # its check and its validate() refuse bad input before anything is written
    with pytest.raises(EnvError, match="needs Discrete observations"):
        train("mc_control", env="CartPole-v1", out=tmp_path / "c", progress=False)
    with pytest.raises(ConfigError, match="alpha must lie in"):
        train("mc_control", out=tmp_path / "c", progress=False, alpha=2.0)
    assert not (tmp_path / "c").exists()
    assert main(["list", "mc_control"]) == 0 and "epsilon" in capsys.readouterr().out


def test_the_llm_stage_example(tmp_path, monkeypatch, capsys):
    need("transformers", "llm")
    entry = install(tmp_path, monkeypatch, "contrib_best_of_n", "llm-stage", "llm-registry-line")
    assert (entry.name, entry.kind, entry.curve) == ("llm-best-of-n", "llm", "reward")
    ov = {"batch_size": 4, "n": 2, "max_len": 24}
    s = train("llm-best-of-n", steps=2, out=tmp_path / "a", overrides=ov, progress=False)
    assert s["status"] == "finished" and s["steps"] == 2 and "final_reward" in s
    assert (tmp_path / "a" / "model" / "config.json").is_file()
    assert (tmp_path / "a" / "learning_curve.png").is_file()
    # stopped after one step and resumed: the same model
    cut = train(
        "llm-best-of-n", steps=2, out=tmp_path / "b", overrides=ov, progress=False, stop_at_step=1
    )
    assert cut["resume_command"] == f"rlfoundry llm best-of-n --resume {tmp_path / 'b'}"
    train(resume=tmp_path / "b", progress=False)
    a, b = _params(tmp_path / "a", "model/"), _params(tmp_path / "b", "model/")
    assert a and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the CLI command comes from the registry line
    argv = [
        "llm",
        "best-of-n",
        "--model",
        "tiny:nano",
        "--steps",
        "1",
        "--out",
        str(tmp_path / "c"),
    ]
    argv += ["--set", "batch_size=2", "--set", "n=2", "--no-progress", "--json"]
    assert main(argv) == 0 and '"algo": "llm-best-of-n"' in capsys.readouterr().out
    with pytest.raises(ConfigError, match="n must be at least 2"):
        train("llm-best-of-n", out=tmp_path / "d", progress=False, n=1)
    assert not (tmp_path / "d").exists()
