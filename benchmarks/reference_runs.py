"""Seeded reference runs: digests of the final checkpoints, to show a refactor changed no numbers.

    python benchmarks/reference_runs.py --record benchmarks/reference_runs.json   # before a change
    python benchmarks/reference_runs.py --check  benchmarks/reference_runs.json   # after it

Each run goes through the command line (the public contract), in its own process, with
the CPU at one thread. The digest covers every tensor of the final checkpoint (weights,
optimizer moments, RNG state), so equal digests mean bit-identical runs. Digests are
machine-specific (floating point can differ across CPU instruction sets): record and
check on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNS: dict[str, list[str]] = {
    "ppo-cartpole": ["train", "ppo", "--env", "CartPole-v1", "--steps", "4096", "--seed", "0"],
    "dqn-cartpole": ["train", "dqn", "--env", "CartPole-v1", "--steps", "3000", "--seed", "1"],
    "a2c-cartpole": ["train", "a2c", "--env", "CartPole-v1", "--steps", "2000", "--seed", "0"],
    "qlearning-frozenlake": ["train", "qlearning", "--env", "FrozenLake-v1", "--steps", "5000"],
    "grpo-tiny": ["llm", "grpo", "--model", "tiny:nano", "--task", "arithmetic", "--steps", "2",
                  "--set", "rollout_size=8", "--set", "group_size=4", "--set", "eval_every=0"],
    "sft-tiny": ["llm", "sft", "--model", "tiny:nano", "--task", "arithmetic", "--steps", "5"],
}


def digest(path: Path) -> str:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def run_all(only: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in RUNS.items():
            if only and name not in only:
                continue
            run_dir = Path(tmp) / name
            cmd = [sys.executable, "-m", "rlfoundry", *argv, "--out", str(run_dir), "--no-progress"]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise SystemExit(f"{name} failed:\n{res.stderr[-2000:]}")
            out[name] = digest(run_dir / "checkpoint.safetensors")
            print(f"{name:24s} {out[name]}", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--record", type=Path)
    g.add_argument("--check", type=Path)
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    got = run_all(args.only)
    if args.record:
        old = json.loads(args.record.read_text()) if args.only and args.record.exists() else {}
        args.record.write_text(json.dumps({**old, **got}, indent=2) + "\n")  # --only: update those
        return 0
    want = json.loads(args.check.read_text())
    bad = [k for k in got if want.get(k) != got[k]]
    for k in got:
        print(f"{k:24s} {'same' if k not in bad else 'DIFFERENT'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
