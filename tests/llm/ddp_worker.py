"""Run by tests/llm/test_ddp.py, once alone and once under `torchrun --nproc_per_node 2`.

mode "update": three GRPO iterations (2 epochs each, micro-batches of 4) on the same
global batch of 16 completions. Every process samples
the FULL batch with the same seeded generator (so 1 and 2 processes see identical
completions) and trains on its own half; rank 0 writes the parameters.
mode "train": the real GRPO loop (`group_pg.train`) for two steps (rank 0 writes the run dir).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import torch
from safetensors.torch import save_file

from rlfoundry.core import group_relative_advantages
from rlfoundry.llm.group_pg import policy_update
from rlfoundry.llm.models import load_model, load_tokenizer
from rlfoundry.llm.rollout import rollout
from rlfoundry.runtime.distributed import init_distributed

torch.set_num_threads(1)


def update(out: str, agg: str) -> None:
    d = init_distributed()
    torch.manual_seed(0)
    tok = load_tokenizer("tiny")
    model = load_model("tiny")
    cfg = SimpleNamespace(
        rollout_size=16,
        group_size=4,
        minibatch_size=0,
        micro_batch_size=4,
        update_epochs=2,
        max_new_tokens=8,
        temperature=1.0,
        clip_coef=0.2,
        clip_coef_high=0.0,
        beta=0.0,
        loss_agg=agg,
        mask_truncated=False,
        max_grad_norm=1.0,
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    prompts = ["1+2=", "30+4=", "7+15=", "22+22="]
    local = cfg.rollout_size // d.world
    for _ in range(3):
        model.eval()
        ro = rollout(model, tok, prompts, cfg.group_size, cfg.max_new_tokens, 1.0, gen)
        model.train()
        rew = torch.tensor([sum(ch.isdigit() for ch in c) / 8 for c in ro.completions])
        adv = group_relative_advantages(rew, cfg.group_size)
        rows = slice(d.rank * local, (d.rank + 1) * local)
        policy_update(model, opt, ro.select(rows), adv[rows], cfg, d)
    if d.main:
        save_file({k: v.detach().contiguous() for k, v in model.named_parameters()}, out)


def train(out: str) -> None:
    from rlfoundry.api import train as api_train

    s = api_train(
        "llm-grpo",
        out=out,
        overrides={
            "model": "tiny",
            "total_steps": 2,
            "rollout_size": 16,
            "group_size": 4,
            "max_new_tokens": 6,
            "eval_every": 0,
            "eval_size": 8,
        },
        progress=False,
    )
    print("SUMMARY", s)


if __name__ == "__main__":
    if sys.argv[1] == "update":
        update(sys.argv[2], sys.argv[3])
    else:
        train(sys.argv[2])
