"""Masked reductions and loss aggregation modes, including micro-batch invariance."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlfoundry.core import aggregate_loss, clipped_surrogate, masked_mean, masked_sum, masked_var

torch.set_num_threads(1)

# Two sequences, L = 3: seq 0 has 3 valid tokens (losses 1, 2, 3), seq 1 has 1 (loss 4).
LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 9.0, 9.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_masked_reductions_hand():
    x = torch.tensor([1.0, 2.0, 3.0, 100.0])
    m = torch.tensor([True, True, True, False])
    assert masked_sum(x, m).item() == 6.0
    assert masked_mean(x, m).item() == 2.0
    # deviations -1, 0, 1: biased var 2/3, unbiased 2/2 = 1
    assert masked_var(x, m).item() == pytest.approx(2 / 3)
    assert masked_var(x, m, unbiased=True).item() == pytest.approx(1.0)
    # per row: [1, 3] -> 2; [5, (100 masked)] -> 5
    xr = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mr = torch.tensor([[1, 1], [1, 0]])
    assert masked_mean(xr, mr, dim=-1).tolist() == [2.0, 5.0]
    assert masked_sum(xr, mr, dim=0).tolist() == [6.0, 3.0]


def test_masked_padding_inf_does_not_leak_and_empty_is_zero():
    x = torch.tensor([1.0, float("inf"), float("nan")])
    m = torch.tensor([1, 0, 0])
    assert masked_mean(x, m).item() == 1.0
    assert masked_mean(x, torch.zeros(3)).item() == 0.0


def test_aggregation_modes_hand():
    # token-mean: (1+2+3+4) / 4 tokens = 2.5
    assert aggregate_loss(LOSS, MASK, "token-mean").item() == pytest.approx(2.5)
    # global token count 8 (e.g. the other micro-batch holds 4 more): 10 / 8
    assert aggregate_loss(LOSS, MASK, "token-mean", num_tokens=8).item() == pytest.approx(1.25)
    # seq-mean-token-mean: (6/3 + 4/1) / 2 = 3
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-mean").item() == pytest.approx(3.0)
    # seq-mean-token-sum: (6 + 4) / 2 = 5
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-sum").item() == pytest.approx(5.0)
    # Dr. GRPO: (6/4 + 4/4) / 2 = 1.25 with max_len 4; default max_len = L = 3: (2 + 4/3)/2
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-sum-norm", max_len=4).item() == pytest.approx(
        1.25
    )
    assert aggregate_loss(LOSS, MASK, "seq-mean-token-sum-norm").item() == pytest.approx(5 / 3)
    # no mask: everything valid, 28 / 6
    assert aggregate_loss(LOSS, None, "token-mean").item() == pytest.approx(28 / 6)


def test_aggregation_errors_name_the_choices():
    with pytest.raises(ValueError, match="token-mean, seq-mean-token-mean"):
        aggregate_loss(LOSS, MASK, "mean")
    with pytest.raises(ValueError, match="num_tokens only applies"):
        aggregate_loss(LOSS, MASK, "seq-mean-token-mean", num_tokens=4)
    with pytest.raises(ValueError, match="max_len only applies"):
        aggregate_loss(LOSS, MASK, "token-mean", max_len=4)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        aggregate_loss(torch.ones(3), None, "seq-mean-token-sum")


def test_local_token_mean_is_not_split_invariant():
    # Why the global count exists: normalising each micro-batch by its own tokens gives
    # 6/3 + 4/1 = 6 for the two rows as separate micro-batches, vs 2 * 2.5 = 5 full-batch
    # (summed over 2 accumulation steps, each of which would be scaled by 1/2).
    per_chunk = sum(
        aggregate_loss(LOSS[i : i + 1], MASK[i : i + 1], "token-mean") for i in range(2)
    )
    assert per_chunk.item() == pytest.approx(6.0)
    assert per_chunk.item() != pytest.approx(2 * aggregate_loss(LOSS, MASK, "token-mean").item())


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.data())
def test_token_mean_with_global_count_is_split_invariant(b, seq_len, data):
    gen = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    loss = torch.randn(b, seq_len, generator=gen, dtype=torch.float64)
    mask = torch.rand(b, seq_len, generator=gen) < 0.7
    cuts = sorted(data.draw(st.sets(st.integers(1, b - 1), max_size=b - 1)) if b > 1 else [])
    bounds = [0, *cuts, b]
    n = mask.sum()
    full = aggregate_loss(loss, mask, "token-mean", num_tokens=n)
    chunks = sum(
        aggregate_loss(loss[i:j], mask[i:j], "token-mean", num_tokens=n)
        for i, j in zip(bounds[:-1], bounds[1:])
    )
    assert torch.allclose(chunks, full, atol=1e-12)
    if mask.any():
        assert torch.allclose(full, loss[mask].mean())


def test_gradient_accumulation_4x1_equals_1x4_for_ppo():
    # Token-level PPO: 4 sequences of different lengths, accumulated one at a time with
    # the global token count, must produce the same gradient as one full batch.
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    old_logp = logits.detach() - 0.1 * torch.randn(4, 5, generator=gen, dtype=torch.float64)
    adv = torch.randn(4, 1, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    n = int(mask.sum())

    logp = logits.clone().requires_grad_()
    loss, _ = clipped_surrogate(logp, old_logp, adv, 0.2, mask, num_tokens=n)
    loss.backward()
    full_grad = logp.grad.clone()

    logp = logits.clone().requires_grad_()
    for i in range(4):
        loss_i, _ = clipped_surrogate(
            logp[i : i + 1], old_logp[i : i + 1], adv[i : i + 1], 0.2, mask[i : i + 1], num_tokens=n
        )
        loss_i.backward()
    assert torch.allclose(logp.grad, full_grad, atol=1e-12)
    assert full_grad.abs().sum() > 0
