"""Which config a run gets: the Config defaults, the tuned file shipped for (entry, env)
when the run's env kwargs are those it was tuned for, a config file, ``--set``, then the
explicit flags; the saved config of a run to resume; the source of ``--init-from``.
:mod:`rlfoundry.runtime.rundir` opens the directory with what this module resolves."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rlfoundry import registry
from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.runtime.config import build_config, load_yaml
from rlfoundry.runtime.run import (
    CHECKPOINT,
    load_checkpoint_file,
    parse_checkpoint_every,
)

#: Keys of a run's config.yaml that are not Config fields ("stage": LLM runs before 0.2).
RUN_KEYS = ("algo", "stage", "init_from", "tuned_config", "checkpoint_every", "rlfoundry_version")
#: Also a key of the run (periodic evaluation, rlfoundry.envs.periodic), unless the entry's
#: Config has a field of that name (the LLM stages, rl2, mappo: their own schedule).
EVAL_EVERY = "eval_every"


def own_eval_every(module: Any) -> bool:
    """True when ``module.Config`` has its own ``eval_every`` field (not the run key)."""
    return any(f.name == EVAL_EVERY for f in dataclasses.fields(module.Config))
CONFIG = "config.yaml"


@dataclass
class Tuned:
    """The shipped tuned config that applies to a run: its ``path`` (``configs/NAME/ENV.yaml``,
    None when none applies), its ``values``, and a ``note`` when one exists but was skipped."""

    path: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def find_tuned(name: str, env_id: str, env_kwargs: dict[str, Any] | None = None) -> Tuned:
    """The tuned config shipped for ``name`` on ``env_id``, if it fits ``env_kwargs``.

    A tuned file says what it was tuned for under ``tuned_for:``: ``env_kwargs`` (default
    ``{}``, the env's defaults) and ``any``, the kwargs it holds for whatever their value
    (e.g. ``[pole_length]``). When the run's ``env_kwargs`` (None: not given) differ on
    another key, the file is skipped and ``note`` says why: hyperparameters tuned for the
    deterministic default GridWorld can fail on a slippery custom layout.
    """
    safe = env_id.replace("/", "_")
    res = resources.files("rlfoundry") / "configs" / name / f"{safe}.yaml"
    if not res.is_file():
        return Tuned()
    label = f"configs/{name}/{safe}.yaml"
    values = load_yaml(Path(str(res)))
    tuned_for = values.pop("tuned_for", None) or {}
    declared = dict(tuned_for.get("env_kwargs") or values.get("env_kwargs") or {})
    free = set(tuned_for.get("any") or [])
    if env_kwargs is not None:
        mine = {k: v for k, v in env_kwargs.items() if k not in free}
        if mine != {k: v for k, v in declared.items() if k not in free}:
            return Tuned(
                note=f"not using the tuned config {label}: it was tuned for env_kwargs "
                f"{declared} and this run has {dict(env_kwargs)}, so the run starts from the "
                f"defaults (pass --config {res} to use it anyway)"
            )
    return Tuned(label, values)


def shipped_configs(name: str) -> list[tuple[str, str]]:
    """``[(env_id, "configs/NAME/ENV.yaml")]``: the envs that entry ``name`` has a tuned
    config for (the file name is the env id with ``/`` as ``_``)."""
    folder = resources.files("rlfoundry") / "configs" / name
    if not folder.is_dir():
        return []
    found = []
    for res in sorted(folder.iterdir(), key=lambda r: r.name.lower()):
        if res.name.endswith(".yaml"):
            stem = res.name.removesuffix(".yaml")
            found.append((stem.replace("_", "/", 1), f"configs/{name}/{res.name}"))
    return found


def tuned_config(name: str, env_id: str) -> dict[str, Any]:
    """The values of the tuned config shipped for ``name`` on ``env_id`` ({} if none)."""
    return find_tuned(name, env_id).values


@dataclass
class Resolved:
    """A config with every source applied, and what the run directory records about it."""

    module: Any
    cfg: Any
    tuned: Tuned = field(default_factory=Tuned)
    checkpoint_every: str | None = None
    eval_every: str | None = None


def resolve(
    name: str,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    config: str | os.PathLike | dict | None = None,
    overrides: dict[str, Any] | None = None,
    tuned: bool = True,
) -> Resolved:
    """The config of registry entry ``name`` from every source; ``tuned=False`` skips the
    shipped tuned file (``--no-tuned``). ``checkpoint_every`` may come from the file or
    ``overrides``; so may ``eval_every`` (:mod:`rlfoundry.envs.periodic`). Both are keys
    of the run, not of the Config."""
    entry = registry.get(name)
    module = entry.load()
    file_cfg = config if isinstance(config, dict) else (load_yaml(config) if config else {})
    overrides = dict(overrides or {})
    every = overrides.pop("checkpoint_every", file_cfg.get("checkpoint_every"))
    if every is not None:
        parse_checkpoint_every(every)  # a bad value fails here, before anything is written
        every = str(every)
    eval_every, run_keys = None, RUN_KEYS
    if not own_eval_every(module):
        eval_every = overrides.pop(EVAL_EVERY, file_cfg.get(EVAL_EVERY))
        eval_every = None if eval_every is None else str(eval_every)
        run_keys = (*RUN_KEYS, EVAL_EVERY)
    file_cfg = {k: v for k, v in file_cfg.items() if k not in run_keys}
    flags = {
        k: v for k, v in (("env_id", env), ("total_steps", steps), ("seed", seed)) if v is not None
    }
    found = Tuned()
    if entry.kind == "gym" and tuned:  # the env decides which tuned config applies
        env_id = flags.get("env_id") or overrides.get("env_id") or file_cfg.get("env_id")
        kwargs = overrides.get("env_kwargs", file_cfg.get("env_kwargs"))
        if isinstance(kwargs, str):
            with contextlib.suppress(yaml.YAMLError):
                kwargs = yaml.safe_load(kwargs)
        if kwargs is not None and not isinstance(kwargs, dict):
            raise ConfigError(
                f"Config key 'env_kwargs' needs a mapping such as {{slip: 0.2}}, got {kwargs!r}; "
                "fix the value in the config file or --set."
            )
        found = find_tuned(entry.name, env_id or build_config(module.Config).env_id, kwargs)
    cfg = build_config(module.Config, found.values, file_cfg, overrides, flags)
    return Resolved(module, cfg, found, every, eval_every)


def resolve_config(
    name: str,
    env: str | None = None,
    steps: int | None = None,
    seed: int | None = None,
    config: str | os.PathLike | dict | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[Any, Any]:
    """Return ``(module, cfg)`` for registry entry ``name`` with every source applied."""
    r = resolve(name, env, steps, seed, config, overrides)
    return r.module, r.cfg


def read_saved(out: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """``(registry name, config.yaml mapping)`` of the run in ``out``, to resume it."""
    path = Path(out) / CONFIG
    if not path.exists():
        raise RLFoundryError(
            f"Cannot resume: '{path}' does not exist; pass the directory of a run."
        )
    data = load_yaml(path)
    name = data.get("algo") or registry.LLM_PREFIX + str(data.get("stage"))
    return name, data


def check_init_from(path: str | os.PathLike, name: str) -> Path:
    """The source run directory of ``--init-from``, checked before anything is written:
    a run of ``name`` (an entry with ``warm_start``) that saved a checkpoint."""
    src = Path(path)
    if not registry.get(name).warm_start:
        allowed = ", ".join(e.name for e in registry.REGISTRY.values() if e.warm_start)
        raise ConfigError(
            f"--init-from works with {allowed}, not {name}; drop --init-from or train one of those."
        )
    if not (src / CONFIG).is_file():
        raise ConfigError(
            f"Cannot start from '{src}': it is not a run directory (no config.yaml); "
            "pass --init-from a directory made by `rlfoundry train`."
        )
    if not (src / CHECKPOINT).is_file():
        raise ConfigError(
            f"Cannot start from '{src}': it has no {CHECKPOINT} (the run never saved one); "
            "train the source run first."
        )
    load_checkpoint_file(src / CHECKPOINT)  # a damaged one: one sentence, before any write
    src_name = load_yaml(src / CONFIG).get("algo")
    if src_name != name:
        raise ConfigError(
            f"Cannot start {name} from '{src}': it was trained by {src_name}; "
            f"warm-start from a {name} run (or train this run with {src_name})."
        )
    return src
