"""rlfoundry: reinforcement learning from a Q-table on a gridworld to aligning a language model.

from rlfoundry import train
summary = train("qlearning", env="FrozenLake-v1", steps=200_000, seed=0)
summary = train("llm-sft", model="tiny:nano", task="arithmetic", steps=200)

`train` trains any entry of `rlfoundry.registry` (`rlfoundry list` shows them). Importing
the package loads nothing heavy: torch comes with the first `train`.

Importing it also registers rlfoundry's environments with Gymnasium, as Gymnasium
packages do (highway_env, ale_py), so that after `import rlfoundry`
`gymnasium.make("rlfoundry/Trading-v0")` works. Gymnasium 1.x has no plugin entry
point any more, and importing gymnasium here would cost every `rlfoundry --help` a
quarter of a second, so the registration waits for gymnasium: at once when it is
already imported, else right after the first `import gymnasium` (a post-import hook).
"""

from __future__ import annotations

import sys
from typing import Any

from rlfoundry._version import __version__

__all__ = ["__version__", "train", "evaluate_run"]


def __getattr__(name: str):  # lazy: `import rlfoundry` stays cheap for the CLI
    if name in ("train", "evaluate_run"):
        from rlfoundry import api

        return getattr(api, name)
    raise AttributeError(name)


def register_envs() -> None:
    """Register every rlfoundry env id with Gymnasium (idempotent): the built-in envs
    (``rlfoundry.envs``) and the applications' (``rlfoundry.apps``: Trading, Highway, ...).

    Skipped while ``rlfoundry.envs`` is itself being imported (it registers its own envs
    when it finishes, and the CLI and ``train`` register the apps'); an import cycle from
    another half-imported rlfoundry module skips it too rather than break that import.
    """
    envs = sys.modules.get("rlfoundry.envs")
    if envs is not None and getattr(envs.__spec__, "_initializing", False):
        return
    try:
        import rlfoundry.envs  # noqa: F401  registers rlfoundry/GridWorld-v0, ...
        from rlfoundry import apps  # noqa: F401  registers rlfoundry/Trading-v0, ...
    except ImportError:
        return


class _Then:
    """gymnasium's own loader, then :func:`register_envs` (the loader protocol, without
    ``importlib.abc``, whose import costs more than all of ``import rlfoundry``)."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # leave no trace of the hook
        self.loader.exec_module(module)
        register_envs()


class _AfterGymnasium:
    """Finds nothing itself: wraps the loader of the first ``import gymnasium``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "gymnasium":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once: the other finders answer from here on
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _Then(spec.loader)
                return spec
        return None


if "gymnasium" in sys.modules:
    register_envs()
elif not any(isinstance(f, _AfterGymnasium) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterGymnasium())
