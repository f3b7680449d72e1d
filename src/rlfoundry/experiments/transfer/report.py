"""The results of a transfer experiment as a plot, markdown tables and files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from rlfoundry.runtime.config import atomic_write_text, save_yaml


def plot_transfer(
    finetune: dict | list[dict] | None,
    lifelong: dict | None,
    path: str | Path,
    titles: list[str] | None = None,
) -> Path:
    """One panel per fine-tuning result (fine-tune vs scratch: mean and min-max over
    seeds) and one for a lifelong result (return on every task along the sequence, mean
    over seeds). ``titles`` name the fine-tuning panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    finetunes = [] if finetune is None else finetune if isinstance(finetune, list) else [finetune]
    n_panels = len(finetunes) + (lifelong is not None)
    fig, axes = plt.subplots(1, n_panels, figsize=(6.2 * n_panels, 4.2), squeeze=False)
    ax_iter = iter(axes[0])
    for k, res in enumerate(finetunes):
        ax = next(ax_iter)
        steps = np.asarray(res["steps"])
        for key, colour in (("finetune", "tab:blue"), ("scratch", "tab:orange")):
            c = np.asarray(res["curves"][key])
            label = "fine-tuned from source" if key == "finetune" else "from scratch"
            ax.plot(steps, c.mean(0), color=colour, label=f"{label} (mean)")
            ax.fill_between(steps, c.min(0), c.max(0), color=colour, alpha=0.2)
        ax.axhline(res["threshold"], color="grey", ls="--", lw=1, label="threshold")
        ax.set_xlabel("target-task env steps")
        ax.set_ylabel("exact return of greedy policy")
        n = len(res["per_seed"])
        head = titles[k] if titles else f"transfer: {res['config']['algo']}"
        ax.set_title(f"{head}, {n} seeds (band: min-max)", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
    if lifelong is not None:
        ax = next(ax_iter)
        c = np.asarray(lifelong["curves"], dtype=np.float64)  # [seeds, points, 1 + n]
        n = c.shape[2] - 1
        steps = c[0, :, 0]
        per = lifelong["config"]["steps_per_task"]
        for j in range(n):
            ax.plot(steps, c[:, :, 1 + j].mean(0), label=f"return on task {j}")
        for i in range(1, n):
            ax.axvline(i * per, color="grey", lw=0.8, ls=":")
        bwt = lifelong["backward_transfer_mean"]
        ax.set_title(f"lifelong: tasks learned in order (BWT {bwt:.2f})", fontsize=10)
        ax.set_xlabel("env steps over the sequence")
        ax.set_ylabel("exact return (mean over seeds)")
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(x: float) -> str:
    return "never" if x == float("inf") else f"{x:.4g}"


def finetune_table(res: dict) -> str:
    """Markdown table of the fine-tuning metrics (mean over seeds; steps: median)."""
    m, med = res["mean"], res["median"]
    rows = [
        "| | fine-tuned | scratch |",
        "|---|---:|---:|",
        f"| return at step 0 (mean) | {m['initial_return_finetune']:.3f} "
        f"| {m['initial_return_scratch']:.3f} |",
        f"| jumpstart (mean) | {m['jumpstart']:+.3f} | |",
        f"| steps to threshold {res['threshold']:.3f} (median) "
        f"| {_fmt(med['steps_to_threshold_finetune'])} | {_fmt(med['steps_to_threshold_scratch'])} |",
        f"| asymptotic return (mean of last evals) | {m['asymptotic_return_finetune']:.3f} "
        f"| {m['asymptotic_return_scratch']:.3f} |",
        f"| area under curve / steps (mean) | {m['area_finetune']:.3f} | {m['area_scratch']:.3f} |",
    ]
    return "\n".join(rows)


def lifelong_table(res: dict) -> str:
    """Markdown table: R (mean over seeds), forgetting per task, backward transfer."""
    R = np.asarray(res["R_mean"])
    n = R.shape[0]
    head = "| after learning | " + " | ".join(f"task {j}" for j in range(n)) + " |"
    rows = [head, "|---" + "|---:" * n + "|"]
    for i in range(n):
        rows.append(f"| task {i} | " + " | ".join(f"{R[i, j]:.3f}" for j in range(n)) + " |")
    fg = res["forgetting_mean"]
    rows.append("| **forgetting** | " + " | ".join(f"{x:.3f}" for x in fg) + " | |")
    rows.append(f"\nBackward transfer (mean over seeds): {res['backward_transfer_mean']:.3f}")
    return "\n".join(rows)


def write_result(kind: str, res: dict, out: Path) -> None:
    """``out/config.yaml``, ``out/results.json`` (curves included), ``out/curves.csv``,
    ``out/transfer.png`` and ``out/summary.md``."""
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(out / "config.yaml", {"experiment": kind, **res["config"]})
    atomic_write_text(out / "results.json", json.dumps(res, indent=1) + "\n")
    with (out / "curves.csv").open("w", newline="") as f:
        w = csv.writer(f)
        if kind == "finetune":
            w.writerow(["seed", "curve", "step", "return"])
            for key, cs in res["curves"].items():
                for seed, c in zip(res["config"]["seeds"], cs):
                    w.writerows([seed, key, s, v] for s, v in zip(res["steps"], c))
        else:
            n = len(res["config"]["tasks"])
            w.writerow(["seed", "step", *[f"return_task{j}" for j in range(n)]])
            for seed, c in zip(res["config"]["seeds"], res["curves"]):
                w.writerows([seed, *row] for row in c)
    plot_transfer(res if kind == "finetune" else None, res if kind == "lifelong" else None,
                  out / "transfer.png")  # fmt: skip
    table = finetune_table(res) if kind == "finetune" else lifelong_table(res)
    atomic_write_text(out / "summary.md", table + "\n")
