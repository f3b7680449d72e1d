"""Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback",
arXiv:2402.04792; TRL's OnlineDPOTrainer).

    rlfoundry llm online-dpo --set model=runs/sft --set reward=rm:runs/rm --out runs/odpo
    rlfoundry llm online-dpo --set model=runs/sft --set reward=judge:http://localhost:8000/v1

Offline DPO fits pairs someone else sampled; online DPO samples them from the current
policy. Each step:

1. sample two completions of each of `batch_size` prompts from the policy
   (`rollout.rollout`, with the RL stages' temperature / top-k / top-p / repetition
   penalty);
2. score both with the reward sources (`reward`: a reward model `rm:DIR`, a judge
   `judge:DIR` or the OpenAI-compatible `judge:http://...`, the task, or
   `module:function`); the higher-scored one is chosen, the other rejected, and a pair
   whose scores tie is left out;
3. one optimizer step of the DPO loss on the pairs against the frozen starting model
   (`loss_type`: sigmoid | ipo | hinge, core.preference.DPO_LOSSES), with the sequence
   log-probs of the policy at temperature 1:

       L = loss(beta * ((pi_c - ref_c) - (pi_r - ref_r)))

Metrics: the reward of every sampled completion (which should rise), the share of
pairs used, the implicit-reward margin and, every `eval_every` steps, the task's
held-out greedy accuracy. One process (no data parallelism).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlfoundry.core import masked_sum
from rlfoundry.core.preference import DPO_LOSSES
from rlfoundry.errors import ConfigError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.evaluation import task_accuracy
from rlfoundry.llm.policy import (
    Reference,
    build_policy,
    check_model_options,
    dropout_off,
    place_rewards,
    save_policy,
    trainable,
)
from rlfoundry.llm.precision import make_generator, restore_generator
from rlfoundry.llm.prompts import (
    RLInputs,
    check_rl_inputs,
    check_sampling,
    load_prompts,
    sampling_options,
    with_task_budget,
)
from rlfoundry.llm.rewards import build_reward
from rlfoundry.llm.rollout import completion_logprobs, rollout
from rlfoundry.runtime.distributed import grad_norm, world_size
from rlfoundry.runtime.run import Run, seed_everything


@dataclass
class Config(RLInputs):
    model: str = ""
    """Starting policy and DPO reference: a model directory (e.g. `rlfoundry llm sft`
    output) or a built-in tiny size (tests)."""
    total_steps: int = 100
    """Sampling + update steps."""
    batch_size: int = 16
    """Prompts per step; each gives one pair (two sampled completions)."""
    max_new_tokens: int = 0
    """Completion length budget in tokens; 0 = the task's."""
    temperature: float = 1.0
    """Sampling temperature (the loss uses the policy's log-probs at temperature 1)."""
    beta: float = 0.1
    """Strength of the implicit KL constraint to the reference (DPO's beta)."""
    loss_type: str = "sigmoid"
    """Preference loss (core.preference.DPO_LOSSES): sigmoid (DPO) | ipo | hinge."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate (after a linear warm-up)."""
    warmup_steps: int = 5
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip; 0 disables."""
    eval_every: int = 25
    """Steps between held-out greedy evaluations of the task (0 = only at the end)."""
    eval_size: int = 200
    """Held-out prompts per evaluation; 0 = no evaluation."""
    seed: int = 0
    """Seed of sampling and prompt order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        if self.beta <= 0:
            raise ConfigError(f"beta must be positive, got {self.beta}.")
        if self.loss_type not in DPO_LOSSES:
            raise ConfigError(
                f"loss_type must be one of {', '.join(DPO_LOSSES)}, got {self.loss_type!r}."
            )
        if self.total_steps < 1 or self.batch_size < 1:
            raise ConfigError("total_steps and batch_size must be at least 1.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}.")
        check_sampling(self)


def check(cfg: Config) -> None:
    """Fail before training: model path, device/dtype/LoRA settings, prompts file fields,
    reward sources, a multi-process launch."""
    if world_size() > 1:
        raise ConfigError(
            "llm-online-dpo runs in one process; start it without torchrun/accelerate."
        )
    check_rl_inputs(cfg)
    check_model_options(cfg)


def train(cfg: Config, run: Run) -> dict[str, Any]:
    cfg = with_task_budget(cfg)
    seed_everything(cfg.seed)
    reward_fn = build_reward(cfg)
    model, tok, prec = build_policy(cfg)
    prompts = load_prompts(cfg, tok)
    place_rewards(reward_fn, prec.device)
    model.train()
    ref = Reference(model, prec)
    loss_fn = DPO_LOSSES[cfg.loss_type]
    params = trainable(model)
    opt, sched = adamw(params, cfg, 1.0)
    rng = np.random.default_rng(cfg.seed)
    gen = make_generator(prec.device, cfg.seed * 1000)
    step = 0
    if (ckpt := resume_training(run, {"model": model}, opt, sched, prec, rng)) is not None:
        step, tensors, state = ckpt
        restore_generator(gen, tensors["gen_state"], state.get("gen_device"), cfg.seed + step)

    def evaluate() -> dict[str, float]:
        with prec.autocast():
            return task_accuracy(model, tok, cfg)

    if step == 0 and cfg.eval_every > 0 and (start := evaluate()):
        run.log(0, **start)
    last_eval: tuple[int, dict[str, float]] = (-1, {})
    while step < cfg.total_steps:
        idx = rng.choice(len(prompts), size=cfg.batch_size, replace=len(prompts) < cfg.batch_size)
        with dropout_off(model), prec.autocast():  # sampling: pi_old's log-probs
            ro = rollout(
                model,
                tok,
                [prompts[i] for i in idx],
                2,
                cfg.max_new_tokens,
                cfg.temperature,
                gen,
                **sampling_options(cfg),
            )
        scores = reward_fn(ro.prompts, ro.completions, **prompts.columns(idx, 2))
        rew = torch.tensor(scores, dtype=torch.float32).view(-1, 2)  # [B, 2]
        used = rew[:, 0] != rew[:, 1]  # ties say nothing about which is better
        first = rew[:, 0] > rew[:, 1]
        rows = torch.arange(len(idx)) * 2
        chosen = torch.where(first, rows, rows + 1)[used]
        rejected = torch.where(first, rows + 1, rows)[used]
        metrics: dict[str, float] = {
            "reward": float(rew.mean()),
            "pairs_used": float(used.float().mean()),
        }
        opt.zero_grad(set_to_none=True)
        if used.any():
            mask = ro.completion_mask.to(prec.device)
            with torch.no_grad(), prec.autocast(), ref() as ref_model:
                ref_seq = masked_sum(completion_logprobs(ref_model, ro, slice(None), 1.0), mask, -1)
            with prec.autocast():
                pol_seq = masked_sum(completion_logprobs(model, ro, slice(None), 1.0), mask, -1)
                loss, r_c, r_r = loss_fn(
                    pol_seq[chosen], pol_seq[rejected], ref_seq[chosen], ref_seq[rejected],
                    cfg.beta, 0.0,
                )  # fmt: skip
            prec.backward(loss)
            prec.unscale(opt)
            metrics["grad_norm"] = grad_norm(params, cfg.max_grad_norm)
            prec.step(opt)
            metrics.update(loss=float(loss.detach()), reward_margin=float((r_c - r_r).mean()))
        else:
            opt.step()  # no pair this step: no gradient, nothing moves (keeps the schedule's order)
        sched.step()
        step += 1
        metrics["lr"] = sched.get_last_lr()[0]
        metrics.update(reward_fn.means())
        if cfg.eval_every > 0 and step % cfg.eval_every == 0:
            last_eval = (step, evaluate())
            metrics.update(last_eval[1])
        run.log(step, **metrics)
        run.progress(step, reward=metrics["reward"])
        if run.checkpoint_due(step) or step == cfg.total_steps:
            save_training(run, step, {"model": model}, opt, sched, prec, rng, gen)
            if run.should_stop(step):
                return {"status": "interrupted", "step": step}

    result: dict[str, Any] = {"status": "finished", "step": step}
    result.update(last_eval[1] if last_eval[0] == step else evaluate())
    save_policy(model, tok, run.path, cfg)  # last: merging LoRA changes the model
    return result
