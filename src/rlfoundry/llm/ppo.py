"""PPO on tokens (Ziegler et al. 2019, arXiv:1909.08593; Ouyang et al. 2022, InstructGPT).

    rlfoundry llm ppo --set model=runs/sft --set reward=rm:runs/rm --out runs/ppo

Every completion token is an action; the state is the prompt plus the tokens so far.
The sequence reward r(x, y) arrives at the LAST completion token; every token pays a
KL penalty to the frozen starting model (k1, Ziegler et al. eq. 2):

    rew_t = -kl_coef * (log pi_old(y_t) - log ref(y_t))  +  [t = last] * r(x, y)

A value network (a copy of the starting model's body plus `models.ValueHead`) gives
V(s_t); per-token advantages and returns come from GAE (core.gae, time-first: the
tokens of a completion are the steps of an episode that terminates at its last
token), then the clipped surrogate and value loss (core.clipped_surrogate,
core.value_loss) are minimised for `update_epochs` passes over mini-batches.

kl_coef is fixed, or adaptive when `kl_target > 0` (Ziegler et al. 2019, sec. 2.2):

    e = clip(KL / kl_target - 1, -0.2, 0.2);   kl_coef <- kl_coef * (1 + e * n / kl_horizon)

with KL the mean summed-k1 of the rollout and n its number of completions.

Device, precision and LoRA: `policy.ModelOptions`. With LoRA the KL reference is the
policy with its adapters turned off, and the value network's body (a copy of the
starting model's) gets its own adapter.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from rlfoundry.core import (
    clipped_surrogate,
    gae,
    kl_k1,
    masked_mean,
    masked_sum,
    normalize_advantages,
    value_loss,
)
from rlfoundry.errors import ConfigError
from rlfoundry.llm.checkpoint import adamw, resume_training, save_training
from rlfoundry.llm.data import check_divisible
from rlfoundry.llm.evaluation import task_accuracy
from rlfoundry.llm.models import ValueHead, position_ids
from rlfoundry.llm.policy import (
    Reference,
    adapt,
    check_model_options,
    dropout_off,
    load_policy,
    place_rewards,
    save_policy,
    trainable,
)
from rlfoundry.llm.precision import (
    count_dtype,
    make_generator,
    restore_generator,
)
from rlfoundry.llm.prompts import (
    RLInputs,
    check_rl_inputs,
    check_sampling,
    load_prompts,
    sampling_options,
    with_task_budget,
)
from rlfoundry.llm.rewards import build_reward
from rlfoundry.llm.rollout import Rollout, completion_logprobs, rollout
from rlfoundry.runtime.distributed import (
    all_reduce_sum,
    init_distributed,
    sync_gradients,
    world_size,
)
from rlfoundry.runtime.run import Run, seed_everything


@dataclass
class Config(RLInputs):
    RENAMED: ClassVar[dict[str, str]] = {"batch_size": "rollout_size"}

    model: str = ""
    """Starting policy, KL reference and value-network body: a model directory, e.g. the
    output of `rlfoundry llm sft`."""
    total_steps: int = 100
    """Rollout + update iterations."""
    rollout_size: int = 32
    """Completions per rollout over all processes."""
    minibatch_size: int = 0
    """Completions per optimizer step; 0 = rollout_size / 4 (4 mini-batches)."""
    micro_batch_size: int = 0
    """Completions per forward/backward pass in each process; 0 = minibatch_size /
    processes."""
    update_epochs: int = 4
    """PPO passes over each rollout."""
    max_new_tokens: int = 0
    """Completion length budget in tokens; 0 = the task's (arithmetic: answer digits + 2)."""
    temperature: float = 1.0
    """Sampling temperature (the loss's log-probs use the same temperature)."""
    learning_rate: float = 5e-5
    """AdamW learning rate of policy and value network (constant after warm-up)."""
    warmup_steps: int = 5
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip (policy and value separately); 0 disables."""
    clip_coef: float = 0.2
    """PPO clip range of the probability ratio."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    vf_clip: float = 0.0
    """Value clip range around the rollout's values; 0 = no value clipping."""
    gamma: float = 1.0
    """Discount over tokens."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    kl_coef: float = 0.05
    """KL penalty coefficient per token in the reward (initial value if adaptive)."""
    kl_target: float = 0.0
    """Target sequence KL of the adaptive controller; 0 = fixed kl_coef."""
    kl_horizon: int = 10_000
    """Horizon (completions) of the adaptive KL controller."""
    norm_adv: bool = True
    """Normalise advantages over the rollout's tokens (mean 0, std 1)."""
    mask_truncated: bool = False
    """Drop completions with no EOS within max_new_tokens from the loss."""
    eval_every: int = 25
    """Steps between held-out greedy evaluations (0 = only at the end)."""
    eval_size: int = 200
    """Held-out prompts per evaluation; 0 = no evaluation."""
    seed: int = 0
    """Seed of sampling, prompt order and the value head."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def validate(self) -> None:
        mini = self.minibatch_size or max(1, self.rollout_size // 4)
        check_divisible(
            "rollout_size % minibatch_size",
            self.rollout_size,
            mini,
            "set minibatch_size to a divisor of rollout_size (or 0 for rollout_size / 4)",
        )
        if self.micro_batch_size:
            check_divisible(
                "minibatch_size % micro_batch_size",
                mini,
                self.micro_batch_size,
                "set micro_batch_size to a divisor of minibatch_size (or 0)",
            )
        for name in ("total_steps", "update_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be positive, got {self.temperature}.")
        check_sampling(self)


def check(cfg: Config) -> None:
    """Fail before training: model path, device/dtype/LoRA settings, prompts file fields,
    reward sources, sizes the processes of a launch cannot share."""
    check_world(cfg, world_size())
    check_rl_inputs(cfg)
    check_model_options(cfg)


def mini_size(cfg: Config) -> int:
    return cfg.minibatch_size or max(1, cfg.rollout_size // 4)


def adaptive_kl(coef: float, kl: float, target: float, n: int, horizon: int) -> float:
    """One update of Ziegler et al.'s proportional KL controller (see module docstring)."""
    err = float(np.clip(kl / target - 1.0, -0.2, 0.2))
    return coef * (1.0 + err * n / horizon)


class ValueModel(torch.nn.Module):
    """V(s_t) for every position: a transformer body plus a scalar head."""

    def __init__(self, body: torch.nn.Module, hidden: int) -> None:
        super().__init__()
        self.body = body
        self.head = ValueHead(hidden)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        pos = position_ids(attention_mask)
        h = self.body(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=pos
        ).last_hidden_state
        return self.head(h).float()  # [B, L]


def completion_values(vm: ValueModel, ro: Rollout, rows: slice) -> Tensor:
    """V of the state before each completion token: the hidden state one position
    earlier, where the token's logits are read too. `[b, T]`."""
    v = vm(ro.input_ids[rows], ro.attention_mask[rows])  # [b, P+T]
    return v[:, ro.prompt_len - 1 : -1]


def token_rewards(score: Tensor, kl_tok: Tensor, mask: Tensor, kl_coef: float) -> Tensor:
    """`[B, T]`: -kl_coef * k1 on every completion token, plus the score on the last."""
    rew = torch.where(mask, -kl_coef * kl_tok, 0.0)
    last = mask.long().cumsum(-1).argmax(-1)  # index of the last valid token
    rew[torch.arange(rew.shape[0], device=rew.device), last] += score
    return rew


def advantages_and_returns(
    rew: Tensor, val: Tensor, mask: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Per-token GAE `[B, T]`: each completion is an episode ending at its last token."""
    val = torch.where(mask, val, 0.0)
    next_val = torch.cat([val[:, 1:], torch.zeros_like(val[:, :1])], dim=1)
    last = mask.long().cumsum(-1).argmax(-1)
    term = torch.zeros_like(mask)
    term[torch.arange(mask.shape[0], device=mask.device), last] = True
    term |= ~mask  # padding after the end: every step its own empty episode
    adv, ret = gae(
        rew.T, val.T, next_val.T, term.T, torch.zeros_like(term.T), gamma, lam
    )  # time-first [T, B]
    return adv.T, ret.T


def check_world(cfg: Config, world: int) -> None:
    """Sizes that depend on the number of processes: the rollout and micro-batches per rank."""
    mini = mini_size(cfg)
    check_divisible(
        f"rollout_size over {world} processes",
        cfg.rollout_size,
        world,
        "make rollout_size a multiple of the number of processes",
    )
    micro = cfg.micro_batch_size or mini // world
    check_divisible(
        f"minibatch_size % (micro_batch_size * {world} processes)",
        mini,
        micro * world,
        "set minibatch_size to a multiple of micro_batch_size x processes",
    )


def train(cfg: Config, run: Run) -> dict[str, Any]:
    d = init_distributed(cfg.device)
    check_world(cfg, d.world)
    mini = mini_size(cfg)
    micro = cfg.micro_batch_size or mini // d.world
    cfg = with_task_budget(cfg)
    seed_everything(cfg.seed)
    reward_fn = build_reward(cfg)
    policy, tok, prec = load_policy(cfg)
    prompts = load_prompts(cfg, tok)  # messages rendered with tok's chat template
    dev = prec.device
    place_rewards(reward_fn, dev)
    # the value network's body: a copy of the starting model's, taken before LoRA wraps the
    # policy, with its own adapter when lora_rank > 0
    body = adapt(copy.deepcopy(policy.base_model), cfg, prec, task_type=None)
    vm = ValueModel(body, policy.config.hidden_size).to(dev)
    policy = adapt(policy, cfg, prec)
    ref = Reference(policy, prec)  # LoRA: the policy with adapters off; else a frozen copy
    params = trainable(policy) + trainable(vm)
    # warm-up, then constant (min_ratio 1): the cosine term is exactly 0
    opt, sched = adamw(params, cfg, 1.0)
    rng = np.random.default_rng(cfg.seed)
    gen = make_generator(dev, cfg.seed * 1000 + d.rank)
    kl_coef, step = cfg.kl_coef, 0
    modules = {"policy": policy, "value": vm}
    ckpt = resume_training(run, modules, opt, sched, prec, rng)
    if ckpt is not None:
        step, tensors, state = ckpt
        reseed = cfg.seed * 1000 + d.rank + step
        restore_generator(gen, tensors["gen_state"], state.get("gen_device"), reseed)
        kl_coef = state["kl_coef"]
    if step == 0 and cfg.eval_every > 0 and d.main:
        with prec.autocast():
            start = task_accuracy(policy, tok, cfg)
        if start:
            run.log(0, **start)
    b_local = cfg.rollout_size // d.world
    mini_local = mini // d.world

    while step < cfg.total_steps:
        t0 = time.perf_counter()
        idx = rng.choice(
            len(prompts), size=cfg.rollout_size, replace=len(prompts) < cfg.rollout_size
        )
        mine = [prompts[i] for i in idx[d.rank * b_local : (d.rank + 1) * b_local]]
        with dropout_off(policy), prec.autocast():  # sampling: pi_old's log-probs
            ro = rollout(
                policy,
                tok,
                mine,
                1,
                cfg.max_new_tokens,
                cfg.temperature,
                gen,
                **sampling_options(cfg),
            )
        cols = prompts.columns(idx[d.rank * b_local : (d.rank + 1) * b_local])
        scores = reward_fn(ro.prompts, ro.completions, **cols)
        score = torch.tensor(scores, dtype=torch.float32, device=dev)
        mask = ro.completion_mask.clone()
        if cfg.mask_truncated:
            mask &= ~ro.truncated[:, None]
        with torch.no_grad():
            with prec.autocast(), ref() as ref_model:
                ref_logp = completion_logprobs(ref_model, ro, slice(None), cfg.temperature)
            with prec.autocast():
                old_val = completion_values(vm, ro, slice(None))
            kl_tok = kl_k1(ro.old_logp, ref_logp)  # [B, T]
            rew_tok = token_rewards(score, kl_tok, ro.completion_mask, kl_coef)
            adv, ret = advantages_and_returns(
                rew_tok, old_val, ro.completion_mask, cfg.gamma, cfg.gae_lambda
            )
            if cfg.norm_adv:
                adv = normalize_advantages(adv, mask)
        stats: dict[str, list[float]] = {
            "pg_loss": [],
            "vf_loss": [],
            "ratio": [],
            "clip_fraction": [],
        }
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(b_local, generator=gen, device=gen.device)
            for m0 in range(0, b_local, mini_local):
                mrows = perm[m0 : m0 + mini_local]
                n_tok = all_reduce_sum(mask[mrows].sum().to(count_dtype(mask)), d).clamp(min=1)
                opt.zero_grad(set_to_none=True)
                for u0 in range(0, mini_local, micro):
                    rows = mrows[u0 : u0 + micro]
                    sub = ro.select(rows)
                    mk = mask[rows]
                    with prec.autocast():
                        logp = completion_logprobs(policy, sub, slice(None), cfg.temperature)
                        pg, info = clipped_surrogate(
                            logp, ro.old_logp[rows], adv[rows], cfg.clip_coef, mk, num_tokens=n_tok
                        )
                        val = completion_values(vm, sub, slice(None))
                        # value_loss is a mean over this micro-batch's tokens; reweight it to a
                        # share of the mini-batch's token mean so accumulation is split-invariant
                        vf = value_loss(val, ret[rows], old_val[rows], cfg.vf_clip or None, mk) * (
                            mk.sum() / n_tok
                        )
                    prec.backward(pg + cfg.vf_coef * vf)
                    stats["pg_loss"].append(float(pg.detach()))
                    stats["vf_loss"].append(float(vf.detach()))
                    stats["ratio"].append(float(info["ratio"]))
                    stats["clip_fraction"].append(float(info["clip_fraction"]))
                sync_gradients(policy, d)
                sync_gradients(vm, d)
                prec.unscale(opt)
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(trainable(policy), cfg.max_grad_norm)
                    torch.nn.utils.clip_grad_norm_(trainable(vm), cfg.max_grad_norm)
                prec.step(opt)
        sched.step()
        step += 1
        kl_seq = masked_sum(kl_tok, ro.completion_mask, dim=-1)  # [B]
        local = torch.tensor([float(score.sum()), score.numel(), float(kl_seq.sum())], device=dev)
        tot = all_reduce_sum(local, d)
        mean_kl = float(tot[2] / tot[1])
        if cfg.kl_target > 0:
            kl_coef = adaptive_kl(kl_coef, mean_kl, cfg.kl_target, int(tot[1]), cfg.kl_horizon)
        n_opt = cfg.update_epochs * (b_local // mini_local)  # optimizer steps this rollout
        metrics = {
            "reward": float(tot[0] / tot[1]),
            "kl": mean_kl,
            "kl_coef": kl_coef,
            "completion_len": float(ro.completion_mask.sum(-1).float().mean()),
            "value_mean": float(masked_mean(old_val, ro.completion_mask)),
            "pg_loss": float(np.sum(stats["pg_loss"])) / n_opt,
            "vf_loss": float(np.sum(stats["vf_loss"])) / n_opt,
            "ratio": float(np.mean(stats["ratio"])),
            "clip_fraction": float(np.mean(stats["clip_fraction"])),
            "step_seconds": time.perf_counter() - t0,
            "elapsed_seconds": run.elapsed(),
            **reward_fn.means(),
        }
        if cfg.eval_every > 0 and step % cfg.eval_every == 0 and d.main:
            with prec.autocast():
                metrics.update(task_accuracy(policy, tok, cfg))
        run.log(step, **metrics)
        run.progress(step, reward=metrics["reward"], kl=mean_kl)
        if run.checkpoint_due(step) or step == cfg.total_steps:
            save_training(run, step, modules, opt, sched, prec, rng, gen, kl_coef=kl_coef)
        if run.should_stop(step):
            return {"status": "interrupted", "step": step}

    result: dict[str, Any] = {"status": "finished", "step": step}
    if d.main:
        with prec.autocast():
            result.update(task_accuracy(policy, tok, cfg))
        save_policy(policy, tok, run.path, cfg)  # last: merging LoRA changes the model
    return result
