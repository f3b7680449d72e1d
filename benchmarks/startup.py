"""Start-up time of the command line: `rlfoundry --help`, `--version`, `import rlfoundry`.

    python benchmarks/startup.py             # 10 runs each; writes the startup section of RESULTS.md
    python benchmarks/startup.py --runs 3 --no-write

Each command runs in a fresh `python` process (what typing the command costs), so the
figure includes the interpreter's own start; the interpreter alone (`python -c pass`) is
measured too, for comparison. Wall time, median and max over the runs. The goal is
`rlfoundry --help` and `--version` under 1 s: building the parser imports neither torch
nor gymnasium (tests/test_architecture.py checks that on every run of the test suite).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

COMMANDS: dict[str, list[str]] = {
    "python -c pass (the interpreter alone)": ["-c", "pass"],
    "import rlfoundry": ["-c", "import rlfoundry"],
    "rlfoundry --version": ["-m", "rlfoundry", "--version"],
    "rlfoundry --help": ["-m", "rlfoundry", "--help"],
    "rlfoundry train --help": ["-m", "rlfoundry", "train", "--help"],
    "import torch (what the parser no longer loads)": ["-c", "import torch"],
}


def time_command(args: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()

    rows = []
    for name, cmd in COMMANDS.items():
        t = time_command(cmd, args.runs)
        rows.append(f"| {name} | {statistics.median(t):.3f} | {max(t):.3f} |")
        print(rows[-1], flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = "\n".join(
        [
            "<!-- startup -->",
            "## Command-line start-up (`benchmarks/startup.py`)",
            "",
            f"{when}, {platform.machine()} with {os.cpu_count()} CPU cores, Python "
            f"{platform.python_version()}, load average {load:.1f} (a machine shared with "
            f"other jobs: the seconds are noisy). Wall seconds of a fresh process, "
            f"{args.runs} runs each. Goal: `rlfoundry --help` and `--version` under 1 s.",
            "",
            "| command | median s | max s |",
            "|---|---:|---:|",
            *rows,
            "<!-- /startup -->",
        ]
    )
    if not args.no_write:
        from results import write_marked_section

        write_marked_section(HERE / "RESULTS.md", "startup", section)
        print("wrote the startup section of benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
