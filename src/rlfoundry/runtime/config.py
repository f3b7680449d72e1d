"""Config dataclasses: field docs, YAML round trip and ``key=value`` overrides.

Every algorithm has one flat ``Config`` dataclass whose fields carry a docstring
(the string literal right below the field, as in CleanRL/tyro). This module reads
those docstrings for ``--help``-style listings and turns YAML files and
``--set key=value`` strings into a validated config, rejecting unknown keys by name
before any work starts.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import os
import tempfile
import textwrap
import types
import typing
import warnings
from pathlib import Path
from typing import Any

import yaml

from rlfoundry.errors import ConfigError


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Return ``{field: docstring}`` from the string literals placed under each field."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _resolved_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(name: str, value: Any, typ: Any) -> Any:
    """Turn ``value`` (from YAML or a ``key=value`` string) into ``typ`` or raise ConfigError."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(name, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"Config key '{name}' cannot be None.")
    if typ is Any:
        return value
    if origin is typing.Literal:
        if value in args:
            return value
        raise ConfigError(
            f"Config key '{name}' must be one of {list(args)}, got {value!r}; "
            "set it to one of those."
        )
    if origin in (list, tuple) or typ in (list, tuple):
        origin = origin or typ
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        items = [_coerce(name, v, inner) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict or typ is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, dict):
            raise ConfigError(f"Config key '{name}' needs a mapping, got {value!r}.")
        return dict(value)
    try:
        if typ is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
                return True
            if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
                return False
            if isinstance(value, int) and value in (0, 1):
                return bool(value)
            raise ValueError
        if typ is int:
            if isinstance(value, bool):
                raise ValueError
            if isinstance(value, float):
                if not value.is_integer():
                    raise ValueError
                return int(value)
            if isinstance(value, str):
                f = float(value.replace("_", ""))
                if not f.is_integer():
                    raise ValueError
                return int(f)
            return int(value)
        if typ is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if typ is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"Config key '{name}' needs a {getattr(typ, '__name__', typ)}, got {value!r}; "
            "fix the value in the config file or --set."
        ) from None
    return value


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["lr=0.1", "gamma=0.9"]`` -> ``{"lr": "0.1", "gamma": "0.9"}``."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(
                f"--set expects key=value, got '{item}'; write it as --set {item}=VALUE."
            )
        key, value = item.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out


#: Config keys renamed to the one vocabulary shared by classic and LLM configs (old -> new).
#: The old name is accepted until rlfoundry 0.3 with a one-line FutureWarning, so config
#: files and saved runs keep working. A ``Config`` may add its own ``RENAMED`` class
#: attribute for names whose new spelling depends on the algorithm (``batch_size``).
RENAMED: dict[str, str] = {
    "lr": "learning_rate",
    "clip_eps": "clip_coef",
    "clip_eps_high": "clip_coef_high",
    "lam": "gae_lambda",
    "epochs": "update_epochs",
    "whiten_advantages": "norm_adv",
    "steps": "total_steps",
    "mini_batch_size": "minibatch_size",
}


def renamed_key(cls: type, key: str) -> str:
    """``key`` under its current name for ``cls`` (with a FutureWarning if it was renamed)."""
    names = {f.name for f in dataclasses.fields(cls)}
    if key in names:
        return key
    new = {**RENAMED, **getattr(cls, "RENAMED", {})}.get(key)
    if new is None or new not in names:
        return key
    warnings.warn(
        f"config key '{key}' is now '{new}'; the old name works until rlfoundry 0.3, "
        f"so rename it in your config file or --set.",
        FutureWarning,
        stacklevel=3,
    )
    return new


def build_config(cls: type, *sources: dict[str, Any] | None) -> Any:
    """Create ``cls`` from defaults updated by each mapping in ``sources`` in order.

    Unknown keys raise :class:`ConfigError` naming the key and the valid ones; renamed
    keys (:data:`RENAMED`) are accepted under their old name with a warning.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    hints = _resolved_types(cls)
    values: dict[str, Any] = {}
    for source in sources:
        for key, value in (source or {}).items():
            key = renamed_key(cls, key.replace("-", "_"))
            if key not in names:
                close = [n for n in sorted(names) if key in n or n in key]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise ConfigError(
                    f"Unknown config key '{key}' for {cls.__module__.rsplit('.', 1)[-1]}{hint}; "
                    f"valid keys: {', '.join(sorted(names))}."
                )
            values[key] = _coerce(key, value, hints[key])
    cfg = cls(**values)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """A YAML-safe dict of the config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return {f.name: plain(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error when the file is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' does not exist; check the path.")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(
            f"Config file '{path}' is not valid YAML ({err}); fix its syntax."
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file '{path}' must hold a mapping of key: value lines.")
    return data


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file (0644 under umask 022)."""
    return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half.

    The file gets the mode a plain ``open(path, "w")`` would give (0644 under umask 022):
    ``mkstemp`` makes its temporary file 0600, which would otherwise leak through the
    rename and keep a shared run unreadable to teammates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_yaml(path: str | os.PathLike, data: dict[str, Any]) -> None:
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))


def type_name(typ: Any) -> str:
    """A field's type for ``rlfoundry list``: ``int``, ``float | None``, and a ``Literal``
    with its choices (``'tanh' | 'relu'``), not the bare word ``Literal``."""
    if typing.get_origin(typ) is typing.Literal:
        return " | ".join(repr(choice) for choice in typing.get_args(typ))
    if typing.get_origin(typ) in (typing.Union, types.UnionType):
        return " | ".join("None" if a is type(None) else type_name(a) for a in typing.get_args(typ))
    return getattr(typ, "__name__", str(typ))


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """``[(name, type, default, doc)]`` for listing a config's fields."""
    docs = field_docs(cls)
    hints = _resolved_types(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        rows.append((f.name, type_name(hints[f.name]), default, docs.get(f.name, "")))
    return rows
