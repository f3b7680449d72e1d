"""``rlfoundry feedback ...``: collect human preferences and export them as pairs.

    rlfoundry feedback create-project NAME --kind compare|rank|rate [--overlap N]
    rlfoundry feedback import FILE.jsonl [--project NAME] [--kind KIND] [--overlap N]
    rlfoundry feedback generate --model DIR --prompts FILE -n K [--project NAME]
    rlfoundry feedback add-annotator NAME [--admin | --reviewer] [--project P ...]
    rlfoundry feedback add-member PROJECT NAME... / remove-member PROJECT NAME...
    rlfoundry feedback rotate-token NAME / revoke-token NAME
    rlfoundry feedback disable-annotator NAME / enable-annotator NAME
    rlfoundry feedback annotators [--json]
    rlfoundry feedback serve [--host 127.0.0.1] [--port 8000] [--max-body-size 1MB]
                             [--login-limit 10]
    rlfoundry feedback stats [--project NAME] [--json]
    rlfoundry feedback export --format pairs|raw|kto [--out FILE.jsonl|.csv|.parquet|DIR]
    rlfoundry feedback leaderboard [--project NAME] [--plot leaderboard.png]
    (export and leaderboard live in ``rlfoundry.cli.feedback_export``)

Annotators see and get work only from projects they are members of.
``add-annotator NAME`` makes them a member of every project that exists at that moment
(``--project P``, repeatable, of those only); a project created later starts with no
members: add them with ``add-member``.

Every command takes ``--db URL`` (any SQLAlchemy URL or a file path; default
$RLFOUNDRY_FEEDBACK_DB, else ``sqlite:///feedback.db`` in the current directory).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path
from typing import Any

from rlfoundry.cli.feedback_export import register_export
from rlfoundry.errors import RLFoundryError

DEFAULT_HOST = "127.0.0.1"
SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20}


def parse_size(text: str) -> int:
    """``"1MB"`` -> 1000000, ``"512KiB"`` -> 524288, ``"2000"`` -> 2000 (bytes)."""
    t = text.strip().lower().replace(" ", "")
    digits = t.rstrip("kmgib")
    unit = t[len(digits) :]
    try:
        value = float(digits)
    except ValueError:
        value = -1.0
    if unit not in SIZE_UNITS or value < 0:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a size; write bytes or a number with kB, MB, GB, KiB or MiB, "
            "e.g. 1MB (0 turns the limit off)"
        )
    return int(value * SIZE_UNITS[unit])


def _engine(args: argparse.Namespace):
    from rlfoundry.feedback.db import make_engine

    return make_engine(args.db)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from rlfoundry.feedback.app import create_app

    if not _is_loopback(args.host):
        print(
            f"warning: serving on {args.host}, reachable from other machines; put it behind "
            "HTTPS (and pass --secure-cookies) before sharing tokens over a network.",
            file=sys.stderr,
        )
    if args.login_limit < 0:
        raise RLFoundryError("--login-limit must be 0 (off) or a positive number of attempts.")
    app = create_app(
        args.db,
        secure_cookies=args.secure_cookies,
        max_body_bytes=args.max_body_size or None,
        login_limit=args.login_limit,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def cmd_create_project(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.projects import create_project

    guidelines = _read_guidelines(args.guidelines)
    create_project(
        _engine(args),
        args.name,
        args.kind,
        overlap=args.overlap,
        gold_every=args.gold_every,
        guidelines=guidelines,
    )
    print(f"created project '{args.name}' ({args.kind}, overlap {args.overlap})")
    return 0


def _read_guidelines(path: str | None) -> str:
    if path is None:
        return ""
    p = Path(path)
    if not p.is_file():
        raise RLFoundryError(f"Guidelines file '{p}' does not exist; check the path.")
    return p.read_text(encoding="utf-8")


def _ensure_project(engine: Any, args: argparse.Namespace, kind: str) -> str:
    from rlfoundry.feedback.projects import create_project, list_projects

    name = args.project
    if name not in {p.name for p in list_projects(engine)}:
        create_project(
            engine,
            name,
            kind,
            overlap=args.overlap,
            gold_every=args.gold_every,
            guidelines=_read_guidelines(args.guidelines),
        )
        print(f"created project '{name}' ({kind}, overlap {args.overlap})")
    return name


def cmd_import(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.projects import import_items, infer_kind, list_projects, parse_jsonl

    engine = _engine(args)
    args.project = args.project or Path(args.file).stem
    existing = {p.name: p for p in list_projects(engine)}
    if args.project in existing:
        kind = existing[args.project].kind
    else:
        kind = args.kind or (infer_kind(args.file) if Path(args.file).is_file() else "compare")
    items = parse_jsonl(args.file, kind)  # all lines checked before anything is written
    _ensure_project(engine, args, kind)
    n = import_items(engine, args.project, items, Path(args.file))
    n_gold = sum(it.is_gold for it in items)
    print(f"imported {n} items ({n_gold} gold) into '{args.project}'")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.generate import check_n_fits, generate_items, read_prompts
    from rlfoundry.feedback.projects import import_items, list_projects

    engine = _engine(args)
    read_prompts(args.prompts)  # a bad prompts file is reported before anything else
    args.project = args.project or Path(args.prompts).stem
    existing = {p.name: p for p in list_projects(engine)}
    if args.project in existing:
        kind = existing[args.project].kind
    else:
        kind = args.kind or ("compare" if args.n == 2 else "rank")
    check_n_fits(kind, args.n)  # before the model is loaded and sampled
    items = generate_items(
        args.model,
        args.prompts,
        n=args.n,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
    )
    _ensure_project(engine, args, kind)
    n = import_items(engine, args.project, items, Path(args.prompts))
    print(f"generated {args.n} responses for {n} prompts into '{args.project}' ({kind})")
    return 0


def cmd_add_annotator(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import add_annotator
    from rlfoundry.feedback.projects import list_projects

    engine = _engine(args)
    token = add_annotator(
        engine, args.name, admin=args.admin, projects=args.project, reviewer=args.reviewer
    )
    projects = args.project or [p.name for p in list_projects(engine)]
    role = "admin " if args.admin else "reviewer " if args.reviewer else ""
    where = (
        f"member of {', '.join(projects)}"
        if projects
        else "member of no project yet (add-member PROJECT NAME)"
    )
    print(f"{role}annotator '{args.name}' created, {where}; token (shown once, keep it secret):")
    print(token)
    return 0


def cmd_rotate_token(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import rotate_token

    token = rotate_token(_engine(args), args.name)
    print(
        f"new token of '{args.name}' (the old one and its logins stop working now; "
        "shown once, keep it secret):"
    )
    print(token)
    return 0


def cmd_revoke_token(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import revoke_token

    revoke_token(_engine(args), args.name)
    print(
        f"token of '{args.name}' revoked and their logins ended; "
        f"`rlfoundry feedback rotate-token {args.name}` issues a new one"
    )
    return 0


def cmd_disable_annotator(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import set_disabled

    released = set_disabled(_engine(args), args.name, True)
    print(
        f"annotator '{args.name}' disabled: token and logins refused from now on, "
        f"judgments kept, {released} open assignment(s) returned to the pool"
    )
    return 0


def cmd_enable_annotator(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import set_disabled

    set_disabled(_engine(args), args.name, False)
    print(f"annotator '{args.name}' enabled; their token works again")
    return 0


def cmd_add_member(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import add_members

    added = add_members(_engine(args), args.project, args.names)
    already = [n for n in args.names if n not in added]
    print(
        f"'{args.project}': added {', '.join(added) or 'nobody'}"
        + (f" (already members: {', '.join(already)})" if already else "")
    )
    return 0


def cmd_remove_member(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import remove_members

    removed = remove_members(_engine(args), args.project, args.names)
    others = [n for n in args.names if n not in removed]
    print(
        f"'{args.project}': removed {', '.join(removed) or 'nobody'} (judgments kept, open "
        "assignments returned to the pool)"
        + (f"; not members: {', '.join(others)}" if others else "")
    )
    return 0


def cmd_annotators(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.accounts import list_annotators

    rows = list_annotators(_engine(args))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        role = " (admin)" if r["admin"] else " (reviewer)" if r.get("reviewer") else ""
        print(
            f"{r['name']}{role}: {r['status']}, {r['judgments']} judgments, projects: "
            f"{', '.join(r['projects']) or '-'}"
        )
    if not rows:
        print("no annotators yet; `rlfoundry feedback add-annotator NAME` creates one")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from rlfoundry.feedback.projects import list_projects
    from rlfoundry.feedback.reports import project_stats

    engine = _engine(args)
    names = [args.project] if args.project else [p.name for p in list_projects(engine)]
    if not names:
        raise RLFoundryError("The database has no projects yet; import items first.")
    stats = [project_stats(engine, name) for name in names]
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()

    def fmt(x: Any) -> str:
        return "-" if x is None else f"{x:.3f}"

    for st in stats:
        ag = st["agreement"]
        console.print(
            f"[bold]{st['project']}[/] ({st['kind']}, overlap {st['overlap']}): "
            f"{st['items_complete']}/{st['items']} items complete, {st['judgments']} judgments; "
            f"percent agreement {fmt(ag['percent_agreement'])}, "
            f"Krippendorff's alpha ({ag['alpha_level']}) {fmt(ag['krippendorff_alpha'])} "
            f"over {ag['units']} units",
            soft_wrap=True,
        )
        table = Table("annotator", "done", "vs majority", "gold acc.", "median active s")
        for name, a in st["annotators"].items():
            table.add_row(
                name,
                str(a["done"]),
                f"{fmt(a['vs_majority']['agreement'])} (n={a['vs_majority']['n']})",
                f"{fmt(a['gold_accuracy'])} (n={a['gold_seen']})",
                "-" if a["median_active_s"] is None else str(a["median_active_s"]),
            )
        console.print(table)
        if ag["pairwise_kappa"]:
            kt = Table("pair", "Cohen's kappa", "agreement", "shared units")
            for k in ag["pairwise_kappa"]:
                kt.add_row(
                    f"{k['a']} / {k['b']}", fmt(k["kappa"]), fmt(k["agreement"]), str(k["n"])
                )
            console.print(kt)
    return 0


def _project_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overlap", type=int, default=2, help="annotators per item (default 2)")
    p.add_argument(
        "--gold-every",
        type=int,
        default=10,
        help="show a gold (attention-check) item every N assignments; 0 turns it off",
    )
    p.add_argument("--guidelines", help="text file shown on every task page")


def register(subparsers: Any) -> None:
    fb = subparsers.add_parser(
        "feedback", help="collect human preferences in a web app and export them as pairs"
    )
    sub = fb.add_subparsers(dest="feedback_command", required=True)

    def add(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument(
            "--db",
            help="SQLAlchemy URL or SQLite file (default $RLFOUNDRY_FEEDBACK_DB or feedback.db)",
        )
        p.set_defaults(func=func)
        return p

    p = add("serve", "run the annotation web app", cmd_serve)
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--secure-cookies", action="store_true", help="mark cookies Secure (HTTPS)")
    p.add_argument(
        "--log-level", default="info", help="uvicorn's log level (default info; debug, warning)"
    )
    p.add_argument(
        "--max-body-size",
        type=parse_size,
        default="1MB",
        help="larger request bodies get 413 before they are read (default 1MB; 0: no limit)",
    )
    p.add_argument(
        "--login-limit",
        type=int,
        default=10,
        help="wrong tokens one client address may try per minute before 429 (default 10; 0: off)",
    )

    p = add("create-project", "create an empty project", cmd_create_project)
    p.add_argument("name")
    p.add_argument("--kind", choices=["compare", "rank", "rate", "rewrite"], required=True)
    _project_opts(p)

    p = add("import", "import {id, prompt, responses[]} JSONL lines into a project", cmd_import)
    p.add_argument("file")
    p.add_argument("--project", help="project name (default: the file name without extension)")
    p.add_argument(
        "--kind",
        choices=["compare", "rank", "rate", "rewrite"],
        help="task of a new project (default: compare for 2 responses, else rank)",
    )
    _project_opts(p)

    p = add("generate", "sample K responses per prompt from a model into a project", cmd_generate)
    p.add_argument("--model", required=True, help="model directory or hub id")
    p.add_argument("--prompts", required=True, help="text file, one prompt a line, or JSONL")
    p.add_argument("-n", type=int, default=2, help="responses per prompt (default 2)")
    p.add_argument("--project")
    p.add_argument("--kind", choices=["compare", "rank", "rate", "rewrite"])
    p.add_argument("--max-new-tokens", type=int, default=128, help="response length limit")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1: off)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--batch-size", type=int, default=8, help="prompts sampled together")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default cpu)")
    _project_opts(p)

    p = add("add-annotator", "create an annotator and print its login token", cmd_add_annotator)
    p.add_argument("name")
    p.add_argument(
        "--admin", action="store_true", help="may use the admin pages and review every project"
    )
    p.add_argument(
        "--reviewer", action="store_true", help="may adjudicate items of their projects (/review)"
    )
    p.add_argument(
        "--project",
        action="append",
        help="member of this project (repeatable; default: every project that exists now)",
    )

    p = add("annotators", "list annotators: status, projects, judgments", cmd_annotators)
    p.add_argument("--json", action="store_true")

    for name, func, what in (
        ("rotate-token", cmd_rotate_token, "issue a new token (printed once); the old one dies"),
        ("revoke-token", cmd_revoke_token, "invalidate an annotator's token and logins"),
        ("disable-annotator", cmd_disable_annotator, "refuse an annotator; judgments stay"),
        ("enable-annotator", cmd_enable_annotator, "undo disable-annotator"),
    ):
        add(name, what, func).add_argument("name", help="annotator name")

    for name, func, what in (
        ("add-member", cmd_add_member, "let annotators see and work on a project"),
        ("remove-member", cmd_remove_member, "take annotators off a project (judgments stay)"),
    ):
        p = add(name, what, func)
        p.add_argument("project")
        p.add_argument("names", nargs="+", metavar="NAME", help="annotator names")

    p = add("stats", "agreement and progress per project", cmd_stats)
    p.add_argument("--project")
    p.add_argument("--json", action="store_true")

    register_export(add)
