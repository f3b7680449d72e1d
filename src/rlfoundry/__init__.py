"""rlfoundry: reinforcement learning from a Q-table on a gridworld to aligning a language model.

from rlfoundry import train
summary = train("qlearning", env="FrozenLake-v1", steps=200_000, seed=0)
summary = train("llm-sft", model="tiny:nano", task="arithmetic", steps=200)

`train` trains any entry of `rlfoundry.registry` (`rlfoundry list` shows them). Importing
the package loads nothing heavy: torch comes with the first `train`.
"""

from __future__ import annotations

from rlfoundry._version import __version__

__all__ = ["__version__", "train", "evaluate_run"]


def __getattr__(name: str):  # lazy: `import rlfoundry` stays cheap for the CLI
    if name in ("train", "evaluate_run"):
        from rlfoundry import api

        return getattr(api, name)
    raise AttributeError(name)
