"""``rlfoundry transfer finetune|lifelong``: the experiments of :mod:`rlfoundry.experiments.transfer`.

    rlfoundry transfer finetune [--config FILE] [--set KEY=VALUE ...] [--algo A] [--seeds ...]
    rlfoundry transfer lifelong [--config FILE] [--set KEY=VALUE ...] [--algo A] [--seeds ...]

Writes ``config.yaml``, ``results.json``, ``curves.csv``, ``transfer.png`` and
``summary.md`` to ``--out`` (default ``runs/transfer-KIND-TIME``).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path
from typing import Any


def _cmd(args: argparse.Namespace) -> int:
    import torch

    from rlfoundry.errors import RLFoundryError
    from rlfoundry.experiments.transfer import (
        FinetuneConfig,
        LifelongConfig,
        run_finetune,
        run_lifelong,
        write_result,
    )
    from rlfoundry.runtime.config import build_config, load_yaml, parse_overrides

    kind = args.transfer_command
    cls = FinetuneConfig if kind == "finetune" else LifelongConfig
    file_cfg = load_yaml(args.config) if args.config else {}
    file_cfg.pop("experiment", None)
    flags = {"seeds": args.seeds} if args.seeds else {}
    if args.algo:
        flags["algo"] = args.algo
    cfg = build_config(cls, file_cfg, parse_overrides(args.set), flags)
    cfg.validate()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"runs/transfer-{kind}-{stamp}")
    if (out / "results.json").exists():
        raise RLFoundryError(f"'{out}' already holds results; choose another --out.")
    torch.set_num_threads(1)
    res = run_finetune(cfg) if kind == "finetune" else run_lifelong(cfg)
    write_result(kind, res, out)
    print((out / "summary.md").read_text(), end="")
    print(f"\nwrote {out}/results.json, curves.csv, transfer.png")
    return 0


def register(sub: Any) -> None:
    """Add ``rlfoundry transfer finetune|lifelong`` (:data:`rlfoundry.cli.main.EXTRA_COMMANDS`)."""
    p = sub.add_parser("transfer", help="transfer (fine-tune vs scratch) and lifelong learning")
    tsub = p.add_subparsers(dest="transfer_command", required=True)
    helps = {
        "finetune": "learn a source task, fine-tune on a target task, compare with scratch",
        "lifelong": "learn a sequence of tasks with one agent and measure forgetting",
    }
    for name, text in helps.items():
        q = tsub.add_parser(name, help=text)
        q.add_argument("--config", help="YAML file of experiment values (see the module doc)")
        q.add_argument(
            "--set", action="append", metavar="KEY=VALUE", help="override one value (repeatable)"
        )
        q.add_argument("--algo", help="tabular algorithm (qlearning, sarsa, expected_sarsa)")
        q.add_argument("--seeds", type=int, nargs="+", help="seeds (default 0 1 2 3 4)")
        q.add_argument("--out", help="output directory (default runs/transfer-KIND-TIME)")
        q.set_defaults(func=_cmd)
