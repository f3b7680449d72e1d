"""`accelerate launch --num_processes N` on a machine with fewer than two GPUs: N ranks, not one.

accelerate starts several processes through torchrun only with `--multi_gpu` (implied
on 2+ GPUs, and meaning "torchrun" on a CPU too) or through mpirun with
`--mpirun_hostfile`. Otherwise its "simple launcher" runs the script ONCE, setting only
MASTER_ADDR / MASTER_PORT (when N > 1) and ACCELERATE_* variables: N appears nowhere in
the process's environment, so any script, accelerate's own included, trains alone
without a word. `accelerate_request()` recognises that process and reads N (and the
machines) from the `accelerate launch` command line that started it, with accelerate's
own parser and config-file defaults; `relaunch` then runs torch's launcher (torchrun)
in this process for N ranks of the same command and exits with their exit code.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from rlfoundry.errors import ConfigError
from rlfoundry.runtime.distributed import launch_env


@dataclass(frozen=True)
class Request:
    """The processes an `accelerate launch` command asked for."""

    num_processes: int
    num_machines: int = 1
    machine_rank: int = 0
    main_process_ip: str = "127.0.0.1"
    main_process_port: int = 29500


def accelerate_request(
    env: Mapping[str, str] | None = None, parent_argv: Sequence[str] | None = None
) -> Request | None:
    """The launch accelerate's one-process launcher left undone, or None.

    That process has ACCELERATE_* variables and MASTER_ADDR (set only when several
    processes or machines were asked for) but no rank variables. `parent_argv` defaults
    to the command line of the parent process (`accelerate launch ...`).
    """
    env = os.environ if env is None else env
    if launch_env(env).world > 1 or "ACCELERATE_MIXED_PRECISION" not in env:
        return None
    if "MASTER_ADDR" not in env:
        return None
    argv = list(parent_argv) if parent_argv is not None else _parent_argv()
    if argv is None:
        raise ConfigError(
            "accelerate launch asked for several processes but started one (its launcher "
            "does so without 2+ GPUs) and its command line cannot be read here; run "
            "`accelerate launch --multi_gpu --num_processes N ...` or `torchrun "
            "--nproc-per-node N ...` instead."
        )
    req = parse_accelerate_argv(argv)
    if req is None or (req.num_processes < 2 and req.num_machines < 2):
        return None
    return req


def _parent_argv() -> list[str] | None:
    try:
        import psutil

        return psutil.Process(os.getppid()).cmdline()
    except Exception:  # psutil missing or no access: fall back to Linux's /proc
        path = Path(f"/proc/{os.getppid()}/cmdline")
        with contextlib.suppress(OSError):
            return [a for a in path.read_bytes().decode().split("\0") if a]
    return None


def parse_accelerate_argv(argv: Sequence[str]) -> Request | None:
    """Request of an `accelerate launch ...` command line (None if it is not one)."""
    rest = _launch_args(argv)
    if rest is None:
        return None
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    # accelerate's own parsing and config-file defaults, minus the warnings the
    # launcher has already printed once
    sink = io.StringIO()
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            args = launch_command_parser().parse_args(rest)
            args = _validate_launch_command(args)[0]
    except (SystemExit, Exception):
        return None
    finally:
        logging.disable(logging.NOTSET)
    machines = int(args.num_machines or 1)
    return Request(
        num_processes=int(args.num_processes or 1),
        num_machines=machines,
        machine_rank=int(args.machine_rank or 0),
        main_process_ip=args.main_process_ip or "127.0.0.1",
        main_process_port=int(args.main_process_port or 29500),
    )


def _launch_args(argv: Sequence[str]) -> list[str] | None:
    """The arguments after `accelerate launch` (or `accelerate-launch`, or
    `python -m accelerate.commands.launch`)."""
    for i, a in enumerate(argv):
        name = Path(a).name
        if name == "accelerate-launch" or a == "accelerate.commands.launch":
            return list(argv[i + 1 :])
        if name == "accelerate" and i + 1 < len(argv) and argv[i + 1] == "launch":
            return list(argv[i + 2 :])
    return None


def _script_argv() -> list[str]:
    """This process's own command for torchrun: `-m MODULE ARGS` or `SCRIPT ARGS`."""
    orig = list(getattr(sys, "orig_argv", []))
    if "-m" in orig[1:]:
        i = orig.index("-m", 1)
        return ["-m", orig[i + 1], *sys.argv[1:]]
    return [sys.argv[0], *sys.argv[1:]]


def relaunch(req: Request) -> NoReturn:
    """Run this command as `req.num_processes` ranks under torch's launcher and exit with
    their exit code (the ranks print their own errors; no launcher traceback)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    per_node = max(1, req.num_processes // req.num_machines)
    if req.num_machines > 1:
        where = [
            "--nnodes", str(req.num_machines),
            "--node-rank", str(req.machine_rank),
            "--master-addr", req.main_process_ip,
            "--master-port", str(req.main_process_port),
        ]  # fmt: skip
    else:
        where = ["--standalone"]
    args = get_args_parser().parse_args(
        [*where, "--nproc-per-node", str(per_node), *_script_argv()]
    )
    print(
        f"rlfoundry: accelerate launch started one process for {req.num_processes}; "
        f"running {per_node} ranks here with torch's launcher.",
        file=sys.stderr,
    )
    for name in list(logging.root.manager.loggerDict):  # the ranks speak for themselves
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as err:
        code = err.get_first_failure()[1].exitcode
        sys.exit(code if code > 0 else 1)
    sys.exit(0)
