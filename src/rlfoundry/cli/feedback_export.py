"""``rlfoundry feedback export`` and ``feedback leaderboard``.

    rlfoundry feedback export --format pairs|raw|kto|sft [--out FILE.jsonl|.csv|.parquet|DIR]
                              [--to jsonl|csv|parquet|datasets] [--complete-only]
                              [--min-votes N] [--project NAME]
    rlfoundry feedback leaderboard [--project NAME] [--bootstrap 1000] [--seed 0]
                                   [--plot leaderboard.png] [--json]

Formats: ``pairs`` (TRL preference pairs, ``feedback.export``), ``raw`` (one row per
judgment per annotator with model names) and ``kto`` (unpaired prompt/completion/label;
the rating and ranking mapping is in ``feedback.formats``) and ``sft`` (the rewrite
task's edited completions as ``{prompt, completion}`` for ``rlfoundry llm sft``). A
reviewer's decision replaces the votes of the item it settles (``feedback.export``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rlfoundry.errors import RLFoundryError


def _items(args: argparse.Namespace) -> list:
    from rlfoundry.feedback.db import make_engine
    from rlfoundry.feedback.projects import list_projects
    from rlfoundry.feedback.reports import items_for_export

    engine = make_engine(args.db)
    names = [args.project] if args.project else [p.name for p in list_projects(engine)]
    if not names:
        raise RLFoundryError("The database has no projects yet; import items first.")
    return [it for name in names for it in items_for_export(engine, name)]


def cmd_export(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.export import select_items, to_pairs
    from rlfoundry.feedback.formats import to_kto, to_raw, to_sft
    from rlfoundry.feedback.writers import check_sink, sink_for, to_jsonl, write_rows

    if args.min_votes < 0:
        raise RLFoundryError("--min-votes must be 0 or more.")
    to_stdout = args.out in (None, "-")
    if to_stdout and args.to not in (None, "jsonl"):
        raise RLFoundryError(f"--to {args.to} needs --out; only JSONL goes to stdout.")
    sink = "jsonl" if to_stdout else sink_for(args.out, args.to)
    if not to_stdout:
        check_sink(args.out, sink)
    items, too_few = select_items(
        _items(args),
        complete_only=args.complete_only,
        min_votes=args.min_votes,
        include_gold=args.include_gold,
    )
    if args.format == "pairs":
        rows, s = to_pairs(
            items,
            aggregate=args.aggregate,
            ties=args.ties,
            min_agreement=args.min_agreement,
            include_gold=args.include_gold,
        )
        what = (
            f"{s.pairs} pairs from {s.items} judged items (skipped: {s.skipped_tie} ties, "
            f"{s.skipped_both_bad} both-bad, {s.skipped_split} split votes, "
            f"{s.skipped_low_agreement} below --min-agreement, {s.skipped_single_vote} "
            "single-vote pairs with undefined agreement)"
        )
    elif args.format == "raw":
        rows = to_raw(items)
        what = f"{len(rows)} judgments of {len(items)} items"
    elif args.format == "sft":
        rows, without = to_sft(items)
        what = f"{len(rows)} SFT examples (rewrites) from {len(items) - without} items"
    else:
        rows, dropped = to_kto(items, aggregate=args.aggregate)
        what = (
            f"{len(rows)} KTO rows from {len(items)} items (dropped: {dropped['neutral']} "
            f"neutral signals, {dropped['split']} split votes)"
        )
    if to_stdout:
        sys.stdout.write(to_jsonl(rows))
        out = "stdout"
    else:
        write_rows(rows, args.out, sink)
        out = f"{args.out} ({sink})"
    left_out = f"; {too_few} items left out for too few votes" if too_few else ""
    print(f"wrote {what} to {out}{left_out}", file=sys.stderr)
    if not rows:
        print("warning: nothing to export; judge more items or relax the filters", file=sys.stderr)
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.export import select_items
    from rlfoundry.feedback.leaderboard import leaderboard, plot_leaderboard

    if args.bootstrap < 1:
        raise RLFoundryError("--bootstrap must be 1 or more resamples (1000 is usual).")
    items, _ = select_items(
        _items(args), complete_only=args.complete_only, min_votes=args.min_votes
    )
    rows = leaderboard(items, n_boot=args.bootstrap, seed=args.seed, prior=args.prior)
    if not rows:
        raise RLFoundryError(
            'No games between named models; import responses as {"text": ..., "model": ...} '
            "and judge some items first."
        )
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        t = Table("model", "games", "win rate [95% CI]", "Elo (Bradley-Terry) [95% CI]")
        for r in rows:
            t.add_row(
                r["model"],
                f"{r['games']:g}",
                f"{r['win_rate']:.3f} [{r['win_rate_lo']:.3f}, {r['win_rate_hi']:.3f}]",
                f"{r['elo']:.0f} [{r['elo_lo']:.0f}, {r['elo_hi']:.0f}]",
            )
        Console().print(t)
    if args.plot:
        plot_leaderboard(rows, args.plot)
        print(f"plot saved to {args.plot}", file=sys.stderr)
    return 0


def register_export(add: Any) -> None:
    """Add ``export`` and ``leaderboard`` through ``feedback.register``'s ``add``."""
    p = add("export", "write judgments as pairs, raw rows or KTO rows", cmd_export)
    p.add_argument(
        "--format",
        choices=["pairs", "raw", "kto", "sft"],
        default="pairs",
        help="pairs (TRL preference pairs, default), raw (one row per judgment, with model "
        "names and the review), kto (prompt/completion/label) or sft (rewrites as "
        "prompt/completion, for llm sft)",
    )
    p.add_argument("--project", help="one project (default: all)")
    p.add_argument(
        "--out", help="FILE.jsonl, FILE.csv, FILE.parquet or a directory (default: stdout)"
    )
    p.add_argument(
        "--to",
        choices=["jsonl", "csv", "parquet", "datasets"],
        help="output format when the --out suffix does not say (datasets: save_to_disk dir)",
    )
    p.add_argument(
        "--aggregate",
        choices=["majority", "none"],
        default="majority",
        help="one row per item (pair/response) by majority vote (default) or one per annotator",
    )
    p.add_argument(
        "--ties",
        choices=["skip", "both"],
        default="skip",
        help="pairs: skip ties (default) or write both orderings marked tie=true",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        default=0.0,
        help="pairs: drop pairs below this agreement; above 0 also drops single-vote pairs",
    )
    _filters(p)
    p.add_argument("--include-gold", action="store_true")

    p = add("leaderboard", "per-model win rate and Bradley-Terry Elo with CIs", cmd_leaderboard)
    p.add_argument("--project", help="one project (default: all)")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples of items (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument(
        "--prior", type=float, default=1.0, help="virtual tied games per model pair (default 1)"
    )
    p.add_argument("--plot", default="leaderboard.png", help="image file ('' for none)")
    p.add_argument("--json", action="store_true")
    _filters(p)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--complete-only",
        action="store_true",
        help="only items with every vote their project asks for (its --overlap)",
    )
    p.add_argument("--min-votes", type=int, default=0, help="only items with at least N judgments")
