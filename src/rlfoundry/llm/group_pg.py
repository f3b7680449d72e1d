"""The group policy-gradient loop shared by GRPO and RLOO: G samples per prompt, a baseline
from the group, PPO's clipped surrogate per token.

    group_pg.train(cfg, run, advantages=leave_one_out_advantages, shape_reward=shaped)

One iteration:

1. sample `rollout_size / group_size` prompts and `group_size` completions of each
   (`rollout.rollout`; pi_old's log-probs come from the sampling pass itself);
2. score them (`rewards.build_reward`), optionally shape the score with the reference
   model's log-probs (`shape_reward(rew, ro, ref_logp)`: RLOO's KL penalty);
3. `adv = advantages(score, group_size)`, one number per completion, broadcast over its
   tokens: GRPO's group-relative or RLOO's leave-one-out baseline (`rlfoundry.core`);
4. `update_epochs` passes of `policy_update` over the rollout:

       ratio_t = pi(y_t|x, y_<t) / pi_old(y_t|x, y_<t)
       L = agg_t[-min(ratio_t A_i, clip(ratio_t, 1-eps, 1+eps_high) A_i) + beta k3_t]

   with the KL term only when it is not already in the reward (GRPO, beta > 0), and the
   aggregation `loss_agg` over the tokens of the whole optimizer mini-batch.

Options, each a table lookup rather than a branch: `loss_type` swaps the clipped token
ratio for GSPO's sequence ratio or CISPO's clipped weight (`core.surrogates`);
`dynamic_sampling` keeps only groups with unequal rewards (`dynamic_sampling.py`);
`tool` makes each completion a multi-turn episode with tool calls (`multiturn.py`);
`top_k` / `top_p` / `repetition_penalty` filter the sampler.

Device, precision, gradient checkpointing and LoRA come from `policy.ModelOptions`;
with LoRA the KL reference is the policy with its adapters turned off.

Data parallel: under `torchrun` / `accelerate launch` each process samples its share
of the prompts (whole groups), and gradients are summed over processes; the loss is
normalised by global token counts, so N processes x B/N equal 1 process x B. With
`fsdp` the policy (and reference) are sharded over the processes; each rank samples
with the whole policy gathered (`runtime.distributed.full_params`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core import AGG_MODES, aggregate_loss, kl_k3, masked_mean, overlong_penalty
from rlfoundry.core.surrogates import POLICY_LOSSES
from rlfoundry.errors import ConfigError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.data import check_divisible
from rlfoundry.llm.dynamic_sampling import sample_groups
from rlfoundry.llm.evaluation import task_accuracy
from rlfoundry.llm.multiturn import tool_rollout
from rlfoundry.llm.policy import (
    Reference,
    build_policy,
    dropout_off,
    place_rewards,
    save_policy,
    trainable,
)
from rlfoundry.llm.precision import (
    Precision,
    count_dtype,
    make_generator,
    restore_generator,
)
from rlfoundry.llm.prompts import (
    RLInputs,
    check_sampling,
    load_prompts,
    sampling_options,
    with_task_budget,
)
from rlfoundry.llm.rewards import build_reward
from rlfoundry.llm.rollout import Rollout, completion_logprobs, rollout
from rlfoundry.llm.tools import load_tool, tool_use
from rlfoundry.runtime.distributed import (
    Dist,
    all_reduce_sum,
    any_rank,
    check_fsdp,
    check_resumed,
    full_params,
    init_distributed,
    on_main,
    shard_model,
    sync_gradients,
    unsharded,
    world_size,
)
from rlfoundry.runtime.run import Run, seed_everything

Advantages = Callable[[Tensor, int], Tensor]
"""`(rew [B], group_size) -> adv [B]`, prompt-major groups."""
RewardShaper = Callable[[Tensor, Rollout, Tensor | None], Tensor]
"""`(rew [B], rollout, ref_logp [B, T] or None) -> shaped score [B]`."""


@dataclass
class GroupConfig(RLInputs):
    """The fields of a group policy-gradient stage (GRPO and RLOO subclass it)."""

    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "rollout_size"}

    model: str = ""
    """Starting policy (and KL reference): a model directory, e.g. the output of
    `rlfoundry llm sft`."""
    total_steps: int = 100
    """Rollout + update iterations."""
    rollout_size: int = 64
    """Completions per rollout over all processes (prompts x group_size)."""
    group_size: int = 8
    """Completions sampled per prompt (G); rollout_size must be a multiple of it."""
    minibatch_size: int = 0
    """Completions per optimizer step; 0 = rollout_size (one step per rollout per epoch)."""
    micro_batch_size: int = 0
    """Completions per forward/backward pass in each process (gradient accumulation);
    0 = minibatch_size / processes."""
    fsdp: bool = False
    """Shard the policy (and reference), gradients and optimizer state over the processes
    of a launch (torch's fully_shard), for models that do not fit one device; needs 2+
    processes. Sampling gathers the whole policy on each rank meanwhile."""
    update_epochs: int = 1
    """Passes over each rollout (GRPO's mu); >1 makes the later passes off-policy."""
    max_new_tokens: int = 0
    """Completion length budget in tokens; 0 = the task's (arithmetic: answer digits + 2)."""
    temperature: float = 1.0
    """Sampling temperature (the log-probs of the loss use the same temperature)."""
    learning_rate: float = 1e-4
    """Peak AdamW learning rate (after a linear warm-up)."""
    warmup_steps: int = 5
    """Linear learning-rate warm-up steps."""
    min_lr_ratio: float = 1.0
    """Final learning rate as a fraction of learning_rate, reached by cosine decay at the
    last step; 1 = constant after warm-up."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip; 0 disables."""
    clip_coef: float = 0.2
    """PPO clip range of the probability ratio (lower side, and upper unless clip_coef_high)."""
    clip_coef_high: float = 0.0
    """Upper clip range (DAPO clip-higher); 0 = same as clip_coef."""
    beta: float = 0.0
    """Weight of the KL(pi || ref) term; 0 = no KL and no reference model."""
    scale_std: bool = True
    """Divide group-centred rewards by the group std (GRPO; False = Dr. GRPO). RLOO's
    leave-one-out baseline does not use it."""
    loss_type: str = "ppo"
    """Policy loss per token (core.surrogates.POLICY_LOSSES): ppo (clipped token ratio) |
    gspo (one clipped ratio per completion, the geometric mean of its token ratios; GSPO,
    Zheng et al. 2025) | cispo (clipped importance weight, gradient stopped, times the
    log-prob; MiniMax-M1 2025)."""
    dynamic_sampling: bool = False
    """Drop groups whose rewards are all equal and sample more prompts until the rollout
    is full (DAPO's dynamic sampling; llm/dynamic_sampling.py). Worth it when most
    groups are all-wrong (logged `frac_zero_std` high), e.g. from a weak SFT model."""
    max_extra_rollouts: int = 4
    """With dynamic_sampling: extra rollouts (each rollout_size completions) sampled per
    step at most; a batch still short is filled with zero-advantage groups."""
    tool: str = ""
    """A tool the policy may call in multi-turn episodes (`<<EXPR=`, the tool's answer and
    `>>` appended, masked out of the loss; llm/multiturn.py): calculator or
    module:function; empty = single-turn completions."""
    max_turns: int = 3
    """With a tool: policy turns per episode at most (each up to max_new_tokens)."""
    loss_agg: str = "token-mean"
    """Token loss aggregation: token-mean | seq-mean-token-mean | seq-mean-token-sum |
    seq-mean-token-sum-norm (Dr. GRPO, divides by max_new_tokens)."""
    mask_truncated: bool = False
    """Drop completions with no EOS within max_new_tokens from the loss (DAPO overlong
    filtering)."""
    overlong_penalty: float = 0.0
    """Weight of DAPO's soft overlong punishment added to each completion's score for its
    advantage (`core.overlong_penalty`: -weight when truncated, a linear ramp over the
    last overlong_buffer tokens of the budget); 0 = off. The logged reward stays unshaped."""
    overlong_buffer: int = 0
    """Tokens before max_new_tokens where the overlong punishment ramps from 0 to -1;
    0 = only completions cut off by the budget are punished."""
    eval_every: int = 25
    """Steps between held-out greedy evaluations (0 = only at the end)."""
    eval_size: int = 200
    """Held-out prompts per evaluation; 0 = no evaluation."""
    seed: int = 0
    """Seed of sampling and prompt order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        check_divisible(
            "rollout_size % group_size",
            self.rollout_size,
            self.group_size,
            "set rollout_size to a multiple of group_size (rollout = prompts x group_size)",
        )
        if self.group_size < 2:
            raise ConfigError(
                f"group_size must be at least 2 for a group baseline, got {self.group_size}."
            )
        mini = self.minibatch_size or self.rollout_size
        check_divisible(
            "rollout_size % minibatch_size",
            self.rollout_size,
            mini,
            "set minibatch_size to a divisor of rollout_size (or 0)",
        )
        if self.micro_batch_size:
            check_divisible(
                "minibatch_size % micro_batch_size",
                mini,
                self.micro_batch_size,
                "set micro_batch_size to a divisor of minibatch_size (or 0)",
            )
        if self.loss_type not in POLICY_LOSSES:
            raise ConfigError(
                f"loss_type must be one of {', '.join(POLICY_LOSSES)}, got {self.loss_type!r}."
            )
        if self.max_extra_rollouts < 0:
            raise ConfigError(f"max_extra_rollouts must be >= 0, got {self.max_extra_rollouts}.")
        check_sampling(self)
        if self.tool:
            load_tool(self.tool)  # an unknown name or a broken module raises here
        if self.max_turns < 1:
            raise ConfigError(f"max_turns must be at least 1, got {self.max_turns}.")
        if self.loss_agg not in AGG_MODES:
            raise ConfigError(
                f"loss_agg must be one of {', '.join(AGG_MODES)}, got {self.loss_agg!r}."
            )
        for name in ("total_steps", "update_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}.")
        if self.beta < 0:
            raise ConfigError(f"beta must be >= 0, got {self.beta}.")
        if self.overlong_penalty < 0 or self.overlong_buffer < 0:
            raise ConfigError(
                "overlong_penalty and overlong_buffer must be >= 0 (0 = off), got "
                f"{self.overlong_penalty} and {self.overlong_buffer}."
            )
        if self.max_new_tokens and self.overlong_buffer >= self.max_new_tokens:
            raise ConfigError(
                f"overlong_buffer ({self.overlong_buffer}) must be below max_new_tokens "
                f"({self.max_new_tokens}); set a shorter buffer."
            )


def check_world(cfg: GroupConfig, world: int | None = None) -> None:
    """Sizes that depend on the number of processes (`world`; default: this launch's):
    whole groups and micro-batches per rank, and FSDP's 2+ processes."""
    world = world_size() if world is None else world
    if cfg.fsdp:
        check_fsdp(world)
        if cfg.dynamic_sampling:
            raise ConfigError(
                "dynamic_sampling does not combine with fsdp (each rank would gather the "
                "policy a different number of times); turn one of them off."
            )
    mini = cfg.minibatch_size or cfg.rollout_size
    check_divisible(
        f"rollout_size / group_size over {world} processes",
        cfg.rollout_size // cfg.group_size,
        world,
        "make the number of prompts per rollout (rollout_size / group_size) a multiple of "
        "the number of processes",
    )
    micro = cfg.micro_batch_size or mini // world
    check_divisible(
        f"minibatch_size % (micro_batch_size * {world} processes)",
        mini,
        micro * world,
        "set minibatch_size to a multiple of micro_batch_size x processes",
    )


# ---------------------------------------------------------------------- the update


def policy_update(
    model: Any,
    opt: torch.optim.Optimizer,
    ro: Rollout,
    adv: Tensor,
    cfg: Any,
    d: Dist,
    ref_logp: Tensor | None = None,
    prec: Precision | None = None,
) -> dict[str, float]:
    """`cfg.update_epochs` passes of clipped-surrogate (+ beta k3) steps over one local rollout.

    `adv` `[b]` (one per completion, broadcast over its tokens). Every loss term is
    divided by the number of valid tokens (token-mean) or sequences (seq-*) of the
    whole optimizer mini-batch summed over processes, so micro-batch sizes and the
    number of processes do not change the gradient. `prec`: autocast and float16's
    loss scaling (default: plain float32 on the model's device).
    """
    prec = prec or Precision(ro.input_ids.device)
    params = trainable(model)
    b_local = ro.input_ids.shape[0]
    adv = adv.to(ro.old_logp.device)
    mini_local = (cfg.minibatch_size or cfg.rollout_size) // d.world
    micro = cfg.micro_batch_size or mini_local
    mask = ro.completion_mask.clone()
    if cfg.mask_truncated:
        mask &= ~ro.truncated[:, None]
    max_len = cfg.max_new_tokens if cfg.loss_agg == "seq-mean-token-sum-norm" else None
    stats: dict[str, list[float]] = {"loss": [], "ratio": [], "clip_fraction": [], "kl": []}
    stats["ratio_first"] = []
    eps_high = cfg.clip_coef_high or None
    policy_loss = POLICY_LOSSES[cfg.loss_type]
    for epoch in range(cfg.update_epochs):
        for m0 in range(0, b_local, mini_local):
            mini_rows = slice(m0, m0 + mini_local)
            n_tok = all_reduce_sum(mask[mini_rows].sum().to(count_dtype(mask)), d)
            n_seq = mini_local * d.world
            opt.zero_grad(set_to_none=True)
            for u0 in range(m0, m0 + mini_local, micro):
                rows = slice(u0, u0 + micro)
                with prec.autocast():
                    logp = completion_logprobs(model, ro, rows, cfg.temperature)  # [u, T]
                mk = mask[rows]
                if cfg.loss_agg == "token-mean":
                    kw: dict[str, Any] = {"num_tokens": n_tok}
                    scale = 1.0
                else:
                    kw = {"max_len": max_len} if max_len is not None else {}
                    scale = (rows.stop - rows.start) / n_seq  # seq-mean over the mini-batch
                loss_tok, info = policy_loss(
                    logp, ro.old_logp[rows], adv[rows, None], mk, cfg.clip_coef, eps_high
                )
                loss = aggregate_loss(loss_tok, mk, cfg.loss_agg, **kw) * scale
                if ref_logp is not None and cfg.beta > 0:
                    kl_tok = kl_k3(logp, ref_logp[rows])
                    loss = loss + cfg.beta * scale * aggregate_loss(kl_tok, mk, cfg.loss_agg, **kw)
                    stats["kl"].append(float(masked_mean(kl_tok.detach(), mk)))
                prec.backward(loss)
                stats["loss"].append(float(loss.detach()))
                stats["ratio"].append(float(info["ratio"]))
                stats["clip_fraction"].append(float(info["clip_fraction"]))
                if epoch == 0 and m0 == 0 and u0 == 0:
                    stats["ratio_first"].append(float(info["ratio"]))
            sync_gradients(model, d)
            prec.unscale(opt)  # after the sum over processes: every rank sees the same inf/nan
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            prec.step(opt)
    out = {k: float(np.mean(v)) for k, v in stats.items() if v and k != "loss"}
    out["loss"] = float(np.sum(stats["loss"])) / max(1, cfg.update_epochs * (b_local // mini_local))
    return out


# ---------------------------------------------------------------------- the loop


def train(
    cfg: GroupConfig,
    run: Run,
    advantages: Advantages,
    shape_reward: RewardShaper | None = None,
) -> dict[str, Any]:
    """The loop of the module docstring. Without `shape_reward` the KL to the reference
    (when beta > 0) is a loss term; with one, the shaper has put it in the reward."""
    d = init_distributed(cfg.device)
    check_world(cfg, d.world)
    cfg = with_task_budget(cfg)
    seed_everything(cfg.seed)
    reward_fn = build_reward(cfg)
    model, tok, prec = build_policy(cfg)
    prompts = load_prompts(cfg, tok)  # messages rendered with tok's chat template
    dev = prec.device
    place_rewards(reward_fn, dev)
    model.train()
    # LoRA: the policy with adapters off; else a frozen copy (none without a KL term)
    ref = Reference(model, prec) if cfg.beta > 0 else None
    plain = None  # rank 0's unsharded copy, to receive the final weights of an FSDP run
    if cfg.fsdp:
        plain = copy.deepcopy(model) if d.main else None
        shard_model(model, d)
        if ref is not None and ref.copy is not None:
            shard_model(ref.copy, d, train=False)
    opt, sched = adamw(trainable(model), cfg, cfg.min_lr_ratio)
    # one prompt-order stream shared by all ranks (each takes its slice), one sampling
    # stream per rank
    rng = np.random.default_rng(cfg.seed)
    gen = make_generator(dev, cfg.seed * 1000 + d.rank)
    step = 0
    ckpt = resume_training(run, {"model": model}, opt, sched, prec, rng)
    if ckpt is not None:
        step, tensors, state = ckpt
        reseed = cfg.seed * 1000 + d.rank + step
        restore_generator(gen, tensors["gen_state"], state.get("gen_device"), reseed)
    check_resumed(d, None if ckpt is None else ckpt[2].get("world", 1))

    def evaluate() -> dict[str, float]:  # rank 0's held-out accuracy (via on_main)
        with prec.autocast():
            return task_accuracy(model, tok, cfg)

    n_prompts = cfg.rollout_size // cfg.group_size
    per_rank = n_prompts // d.world
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    if step == 0 and cfg.eval_every > 0 and (start := on_main(d, model, evaluate)):
        run.log(0, **start)
    last_eval: tuple[int, dict[str, float]] = (-1, {})  # reused at the end if still current

    gen_seconds = [0.0]
    tool = load_tool(cfg.tool) if cfg.tool else None

    def draw() -> tuple[Rollout, dict[str, list[Any]]]:
        """Sample one rollout's worth of groups: this rank's share of n_prompts prompts."""
        t1 = time.perf_counter()
        idx = rng.choice(len(prompts), size=n_prompts, replace=len(prompts) < n_prompts)
        share = idx[d.rank * per_rank : (d.rank + 1) * per_rank]
        # no dropout while sampling: the sampling log-probs are pi_old's; FSDP: each rank
        # samples its own lengths
        with dropout_off(model), full_params(model), prec.autocast():
            args = (model, tok, [prompts[i] for i in share], cfg.group_size)
            args += (cfg.max_new_tokens, cfg.temperature, gen)
            if tool is None:
                ro = rollout(*args, **sampling_options(cfg))
            else:
                ro = tool_rollout(*args, tool, cfg.max_turns, **sampling_options(cfg))
        gen_seconds[0] += time.perf_counter() - t1
        return ro, prompts.columns(share, cfg.group_size)

    def rewards_of(ro: Rollout, cols: dict[str, list[Any]]) -> Tensor:
        scores = reward_fn(ro.prompts, ro.completions, **cols)
        return torch.tensor(scores, dtype=torch.float32, device=dev)

    while step < cfg.total_steps:
        t0 = time.perf_counter()
        gen_seconds[0] = 0.0
        if cfg.dynamic_sampling:
            ro, _, rew, sampled, dyn = sample_groups(
                draw, rewards_of, per_rank, cfg.group_size, cfg.max_extra_rollouts, pad_id
            )
        else:
            ro, cols = draw()
            rew = sampled = rewards_of(ro, cols)
            dyn = {}
        ref_logp = None
        if ref is not None:
            with torch.no_grad(), prec.autocast(), ref() as ref_model:
                ref_logp = completion_logprobs(ref_model, ro, slice(None), cfg.temperature)
        score = rew if shape_reward is None else shape_reward(rew, ro, ref_logp)
        if cfg.overlong_penalty:
            lens = ro.completion_mask.sum(dim=1)
            over = overlong_penalty(lens, ro.truncated, cfg.max_new_tokens, cfg.overlong_buffer)
            score = score + cfg.overlong_penalty * over.to(score.device)
        adv = advantages(score, cfg.group_size)
        # GRPO puts the KL in the loss; a reward shaper (RLOO) has already put it in the reward
        upd = policy_update(
            model, opt, ro, adv, cfg, d, ref_logp if shape_reward is None else None, prec
        )
        sched.step()
        step += 1
        n_tok = float(ro.completion_mask.sum())
        g = rew.view(-1, cfg.group_size)
        local = [float(rew.sum()), rew.numel(), n_tok, float(ro.truncated.sum())]
        local += [float(sampled.sum()), sampled.numel()]
        tot = all_reduce_sum(torch.tensor(local, device=dev), d)
        metrics = {
            # every completion sampled this step (dynamic sampling's batch is a selection)
            "reward": float(tot[4] / tot[5]),
            "completion_len": float(tot[2] / tot[1]),
            "truncated": float(tot[3] / tot[1]),
            "frac_zero_std": float((g.std(dim=1) == 0).float().mean()),
            **dyn,
            **({} if tool is None else {"tool_use": tool_use(ro.completions)}),
            "lr": sched.get_last_lr()[0],
            "gen_seconds": gen_seconds[0],
            "step_seconds": time.perf_counter() - t0,
            "elapsed_seconds": run.elapsed(),
            **upd,
            **reward_fn.means(),
        }
        if cfg.eval_every > 0 and step % cfg.eval_every == 0:
            last_eval = (step, on_main(d, model, evaluate))
            metrics.update(last_eval[1])
        run.log(step, **metrics)
        run.progress(step, reward=metrics["reward"])
        due, stop = any_rank(d, run.checkpoint_due(step), run.should_stop(step))
        if due or step == cfg.total_steps:
            # every rank saves: each keeps its own sampling stream (rank > 0 in DIR/.rankN)
            save_training(run, step, {"model": model}, opt, sched, prec, rng, gen, world=d.world)
        if stop:
            return {"status": "interrupted", "step": step}

    result: dict[str, Any] = {"status": "finished", "step": step}
    result.update(last_eval[1] if last_eval[0] == step else on_main(d, model, evaluate))
    whole = unsharded(model, plain, d)
    if whole is not None:
        save_policy(whole, tok, run.path, cfg)  # last: merging LoRA changes the model
    return result
