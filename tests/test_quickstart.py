"""The main job (`./run.sh main` = `rlfoundry quickstart`) end to end on small budgets:
every stage runs through the same code and REPORT.md gets its table."""

from rlfoundry import api
from rlfoundry.cli import quickstart


def test_quickstart_without_the_llm_writes_its_report(tmp_path, monkeypatch):
    real = api.train

    def short(algo, **kw):  # the shipped configs, on a budget that fits a unit test
        return real(algo, steps=2_000, **kw)

    monkeypatch.setattr(api, "train", short)  # quickstart imports it when it runs
    report = quickstart.run_quickstart(tmp_path / "qs", include_llm=False, progress=False)
    text = report.read_text()
    for name in ("qlearning", "dyna_q", "ppo", "dqn"):
        assert f"| {name} |" in text
