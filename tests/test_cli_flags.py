"""`rlfoundry train` shorthand flags (--num-envs, --async-envs and their refusals) and
`rlfoundry eval --render-video`."""

from __future__ import annotations

import json
import os

from rlfoundry.cli.main import main
from rlfoundry.envs import vec
from rlfoundry.runtime.config import load_yaml


def test_num_envs_flag_sets_the_vector_env_width(tmp_path):
    out = tmp_path / "ppo"
    argv = ["train", "ppo", "--env", "CartPole-v1", "--steps", "256", "--num-envs", "2"]
    argv += ["--set", "num_steps=64", "--set", "eval_episodes=1", "--out", str(out)]
    assert main(argv + ["--no-progress"]) == 0
    cfg = load_yaml(out / "config.yaml")
    assert cfg["num_envs"] == 2 and cfg["async_envs"] is False
    assert int(cfg["total_steps"]) == 256
    # eval of the saved run, with a GIF of one episode
    assert main(["eval", str(out), "--episodes", "2", "--render-video"]) == 0
    (gif,) = out.glob("eval-*.gif")  # its own files: the training record stays as it was
    assert gif.stat().st_size > 0
    (record,) = out.glob("eval-*.json")
    result = json.loads(record.read_text())
    assert result["eval_episodes"] == 2 and result["video"] == str(gif)
    assert json.loads((out / "summary.json").read_text())["eval_episodes"] == 1


def test_async_envs_flag_steps_the_envs_in_subprocesses(tmp_path, monkeypatch):
    """The run's vector env is Gymnasium's AsyncVectorEnv: one worker process per copy
    (other pids than this one), alive while the run steps through them."""
    seen: dict[str, list] = {"pids": [], "alive_steps": []}

    class Spy(vec.AsyncVectorEnv):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen["pids"] = [p.pid for p in self.processes]

        def step_wait(self, *args, **kwargs):
            seen["alive_steps"].append(all(p.is_alive() for p in self.processes))
            return super().step_wait(*args, **kwargs)

    monkeypatch.setattr(vec, "AsyncVectorEnv", Spy)
    out = tmp_path / "a2c"
    argv = ["train", "a2c", "--env", "CartPole-v1", "--steps", "40", "--num-envs", "2"]
    argv += ["--async-envs", "--set", "eval_episodes=1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    cfg = load_yaml(out / "config.yaml")
    assert cfg["num_envs"] == 2 and cfg["async_envs"] is True
    pids = seen["pids"]
    assert len(set(pids)) == 2 and os.getpid() not in pids, pids
    # 40 steps over 2 copies: at least 20 vector steps, all through live workers
    assert len(seen["alive_steps"]) >= 20 and all(seen["alive_steps"])


def test_flags_are_refused_for_algorithms_without_the_field(tmp_path, capsys):
    argv = ["train", "qlearning", "--env", "FrozenLake-v1", "--out", str(tmp_path / "q")]
    assert main(argv + ["--num-envs", "4"]) == 2
    err = capsys.readouterr().err
    assert "--num-envs is not available for qlearning" in err and "ppo, a2c or dqn" in err
    assert not (tmp_path / "q").exists()


def test_resume_refuses_arguments_it_would_ignore(tmp_path, capsys):
    out = tmp_path / "q"
    argv = ["train", "qlearning", "--env", "FrozenLake-v1", "--steps", "200", "--out", str(out)]
    assert main(argv + ["--no-progress"]) == 0
    saved = (out / "config.yaml").read_text()
    for extra, message in (
        (["--steps", "400"], "--steps 400 contradicts the resumed run's 200"),
        (["--seed", "3"], "--seed 3 contradicts"),
        (["--set", "gamma=0.5"], "--config and --set do not apply to a resumed run"),
    ):
        assert main(["train", "--resume", str(out), *extra, "--no-progress"]) == 2
        assert message in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == saved  # nothing rewritten


def test_no_plot_leaves_out_the_learning_curve_only(tmp_path):
    out = tmp_path / "ppo"
    argv = ["train", "ppo", "--env", "CartPole-v1", "--steps", "256", "--out", str(out)]
    assert main(argv + ["--set", "eval_episodes=1", "--no-progress", "--no-plot"]) == 0
    assert (out / "summary.json").is_file() and (out / "metrics.csv").is_file()
    assert not (out / "learning_curve.png").exists()
    assert main(["plot", str(out), "--out", str(out / "curve.png")]) == 0  # drawn later
    assert (out / "curve.png").stat().st_size > 0
