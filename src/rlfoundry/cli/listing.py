"""`rlfoundry list [NAME]`: the algorithms, LLM stages and built-in environments, or one
entry's config keys (type, default, meaning) and the envs with a shipped tuned config."""

from __future__ import annotations

import argparse
from typing import Any

from rlfoundry import registry


def _list_entry(console: Any, entry: registry.Entry) -> None:
    """``rlfoundry list NAME``: every config key (type, default, meaning) and the envs that
    have a tuned config shipped for NAME."""
    from rich.table import Table

    from rlfoundry.runtime.config import describe
    from rlfoundry.runtime.resolve import shipped_configs

    table = Table(title=f"{entry.name} config (use --set key=value)")
    table.add_column("key", no_wrap=True)
    for col in ("type", "default", "meaning"):
        table.add_column(col)
    for name, typ, default, doc in describe(entry.load().Config):
        table.add_row(name, typ, repr(default), doc)
    table.add_row(
        "checkpoint_every",
        "str",
        "'60s'",
        "Every run's: how often to checkpoint, in steps (1000), time (60s, 5m) or both "
        "(1000,60s); a fresh run also checkpoints after its first update.",
    )
    console.print(table)
    if entry.kind != "gym":
        return
    shipped = shipped_configs(entry.name)
    if not shipped:
        console.print(
            f"No tuned config is shipped for {entry.name}: every env starts from the defaults above."
        )
        return
    table = Table(title=f"envs with a tuned {entry.name} config (used when --env names one)")
    table.add_column("env", no_wrap=True)
    table.add_column("file (--no-tuned skips it)")
    for env_id, label in shipped:
        table.add_row(env_id, label)
    console.print(table)


def cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if args.algo:
        _list_entry(console, registry.get(args.algo))
        return 0
    for kind, title in (
        ("gym", "algorithms (rlfoundry train NAME)"),
        ("llm", "language-model stages (rlfoundry llm STAGE)"),
    ):
        table = Table(title=title)
        table.add_column("name", no_wrap=True)
        table.add_column("what it is")
        for entry in registry.entries(kind):
            table.add_row(entry.name, entry.about)
        console.print(table)
    from rlfoundry.api import load_plugins

    load_plugins()
    from rlfoundry.apps import APP_ENVS
    from rlfoundry.envs import BUILTIN_ENVS

    table = Table(title="built-in environments (plus every Gymnasium id)")
    table.add_column("id")
    for env_id in BUILTIN_ENVS + APP_ENVS:
        table.add_row(env_id)
    console.print(table)
    return 0
