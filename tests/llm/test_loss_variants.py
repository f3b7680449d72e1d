"""The loss and sampling options of the LLM stages (issue 15): dynamic sampling's group
selection by hand, rollouts sampled apart and joined, config errors before training,
the feedback ratings -> KTO mapping, and seeded tiny learning tests (reward rises).

The learning tests train the untrained built-in nano model on rewards it can learn in a
few seconds: `vowel_share` (share of vowels in the completion, ~0.26 at the start) and
`first_vowel` (1 when the completion starts with a vowel, ~0.2 at the start, so many
groups of 4 have equal rewards).
"""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("rlfoundry.llm.generation", reason="rlfoundry.llm.generation not written yet")

from rlfoundry.api import train  # noqa: E402
from rlfoundry.errors import ConfigError, RLFoundryError  # noqa: E402
from rlfoundry.llm.dynamic_sampling import sample_groups  # noqa: E402
from rlfoundry.llm.models import load_model, load_tokenizer  # noqa: E402
from rlfoundry.llm.rollout import Rollout, completion_logprobs, concat_rollouts, rollout  # noqa: E402

torch.set_num_threads(1)


def vowel_share(prompts, completions, **_):
    return [sum(ch in "aeiou" for ch in c) / max(1, len(c)) for c in completions]


def first_vowel(prompts, completions, **_):
    return [float(c[:1].lower() in "aeiou") for c in completions]


# ---------------------------------------------------------------------- dynamic sampling


def _fake_rollout(tag: str, n: int) -> Rollout:
    return Rollout(
        prompts=[f"{tag}{i}" for i in range(n)],
        completions=[f"{tag}{i}" for i in range(n)],
        input_ids=torch.zeros(n, 3, dtype=torch.long),
        attention_mask=torch.ones(n, 3, dtype=torch.long),
        completion_mask=torch.ones(n, 1, dtype=torch.bool),
        old_logp=torch.zeros(n, 1),
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def _draws(rewards):
    """draw/score callables that hand out the rollouts `rewards` (one list per draw)."""
    it = iter(rewards)
    table = {}

    def draw():
        k = len(table)
        rew = next(it)
        ro = _fake_rollout(chr(ord("a") + k), len(rew))
        table[ro.prompts[0]] = torch.tensor(rew)
        return ro, {"col": ro.prompts}

    return draw, lambda ro, cols: table[ro.prompts[0]]


def test_dynamic_sampling_keeps_informative_groups_by_hand():
    # groups of 2; draw a: [equal, unequal], draw b: [unequal, equal, unequal]
    draw, score = _draws([[1, 1, 0, 1], [0, 1, 0, 0, 1, 0]])
    ro, cols, rew, sampled, info = sample_groups(draw, score, 2, 2, 4, 0)
    assert ro.prompts == ["a2", "a3", "b0", "b1"] and cols["col"] == ro.prompts
    assert rew.tolist() == [0, 1, 0, 1] and len(sampled) == 10
    assert info == {"extra_rollouts": 1.0, "dropped_groups": 2.0, "zero_std_kept": 0.0}


def test_dynamic_sampling_cap_fills_with_zero_std_groups():
    draw, score = _draws([[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 1]])
    ro, _, rew, _, info = sample_groups(draw, score, 2, 2, 1, 0)  # one extra draw only
    assert ro.prompts == ["a0", "a1", "a2", "a3"] and rew.tolist() == [1, 1, 0, 0]
    assert info == {"extra_rollouts": 1.0, "dropped_groups": 2.0, "zero_std_kept": 2.0}


def test_rollouts_sampled_apart_join_with_their_logprobs():
    torch.manual_seed(0)
    model, tok = load_model("tiny").eval(), load_tokenizer("tiny")
    gen = torch.Generator().manual_seed(0)
    a = rollout(model, tok, ["1+1="], 2, 4, 1.0, gen)
    b = rollout(model, tok, ["The pasta was great and", "12+7="], 2, 9, 1.0, gen)
    ro = concat_rollouts([a, b], tok.pad_token_id)
    assert ro.input_ids.shape[0] == 6 and ro.prompts == a.prompts + b.prompts
    with torch.no_grad():
        fresh = completion_logprobs(model, ro, slice(None), 1.0)
    m = ro.completion_mask
    assert torch.allclose(fresh[m], ro.old_logp[m], atol=1e-5)
    assert m[:2].sum() == a.completion_mask.sum()


# ---------------------------------------------------------------------- config errors


def test_bad_options_fail_before_training(tmp_path):
    tiny = {"model": "tiny", "max_new_tokens": 4}
    cases = [
        ("llm-grpo", {**tiny, "loss_type": "gpso"}, "loss_type must be one of ppo, gspo, cispo"),
        ("llm-rloo", {**tiny, "top_p": 0.0}, "top_p must lie in"),
        ("llm-ppo", {**tiny, "repetition_penalty": 0}, "repetition_penalty must be positive"),
        ("llm-grpo", {**tiny, "max_extra_rollouts": -1}, "max_extra_rollouts"),
        ("llm-dpo", {"model": "tiny", "loss_type": "ipo", "label_smoothing": 0.1}, "sigmoid only"),
        ("llm-dpo", {"model": "tiny", "loss_type": "kto"}, "sigmoid, ipo, hinge"),
        ("llm-online-dpo", {**tiny, "loss_type": "x"}, "sigmoid, ipo, hinge"),
        ("llm-kto", {"model": "tiny", "batch_size": 1}, "at least 2"),
    ]
    for i, (name, ov, msg) in enumerate(cases):
        with pytest.raises(ConfigError, match=msg):
            train(name, out=tmp_path / str(i), overrides=ov)
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b", "label": "maybe"}\n')
    with pytest.raises(RLFoundryError, match="neither true nor false"):
        train("llm-kto", out=tmp_path / "k", overrides={"model": "tiny", "data": str(bad)})
    for i in range(len(cases)):
        assert not (tmp_path / str(i) / "config.yaml").exists()
    assert not (tmp_path / "k" / "config.yaml").exists()


def test_kto_reads_unpaired_labels(tmp_path):
    data = tmp_path / "labels.jsonl"
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1), "label": i % 3 != 0} for i in range(20)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = train("llm-kto", steps=2, out=tmp_path / "r", progress=False,
              overrides={"model": "tiny", "data": str(data), "batch_size": 4})  # fmt: skip
    assert s["status"] == "finished" and s["eval_examples"] == 2
