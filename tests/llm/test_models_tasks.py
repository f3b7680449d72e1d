"""Tokenizer, models and tasks: digit splitting, save/load round trips, rewards worked out
by hand, split disjointness, and the errors users see for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rlfoundry.errors import RLFoundryError
from rlfoundry.llm.data import load_jsonl, next_batch
from rlfoundry.llm.models import (
    ValueHead,
    load_model,
    load_tokenizer,
    policy_logprobs,
    save_model,
    tiny_config,
)
from rlfoundry.llm.tasks import TASKS, PreferenceTask, Task, get_task, held_out
from rlfoundry.llm.tokenizer import build_tokenizer

torch.set_num_threads(1)


# ---------------------------------------------------------------------- tokenizer


def test_every_digit_is_its_own_token():
    tok = load_tokenizer("tiny")
    for text in ["1234567890", "17+25=42", "<answer>900</answer>", "x 1000 y"]:
        pieces = tok.convert_ids_to_tokens(tok.encode(text, add_special_tokens=False))
        digits = [p for p in pieces if any(ch.isdigit() for ch in p)]
        assert all(len(p) == 1 for p in digits), pieces
    # the same digit is always the same id, whatever surrounds it
    assert (
        tok.encode("7", add_special_tokens=False) == tok.encode("77", add_special_tokens=False)[:1]
    )
    assert len(tok.encode("1234+567=", add_special_tokens=False)) == 9


@pytest.mark.parametrize("text", ["17+25=42", " The pasta was really great!", "héllo\n\t🙂 9"])
def test_round_trip_and_special_tokens(text):
    tok = load_tokenizer("tiny")
    ids = tok.encode(text)
    assert tok.decode(ids) == text  # byte-level: exact, no unknown token
    assert tok.bos_token_id not in ids and tok.eos_token_id not in ids  # plain prompts
    assert (tok.pad_token, tok.eos_token, tok.bos_token) == ("<pad>", "<eos>", "<bos>")
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3


def test_build_tokenizer_is_deterministic_and_saves(tmp_path):
    corpus = ["12+30=42", "the movie was great", "the food was awful"] * 5
    a, b = build_tokenizer(corpus, 300), build_tokenizer(reversed(corpus), 300)
    assert a.get_vocab() == b.get_vocab()
    a.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    c = AutoTokenizer.from_pretrained(tmp_path)
    assert c.encode("the movie 123") == a.encode("the movie 123")
    assert c.pad_token == "<pad>"
    with pytest.raises(RLFoundryError, match="vocab_size"):
        build_tokenizer(corpus, 100)


# ---------------------------------------------------------------------- models


@pytest.mark.parametrize("name", ["tiny:nano", "tiny:nano:llama"])
def test_local_directory_round_trip_gives_equal_logits(tmp_path, name):
    torch.manual_seed(0)
    model, tok = load_model(name).eval(), load_tokenizer(name)
    save_model(model, tok, tmp_path / "m")
    assert list((tmp_path / "m").glob("*.safetensors"))
    model2, tok2 = load_model(tmp_path / "m").eval(), load_tokenizer(tmp_path / "m")
    ids = torch.tensor([tok.encode("17+25=42")])
    assert tok2.encode("17+25=42") == ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model2(ids).logits)
    # a run directory holding model/ works the same
    (tmp_path / "run").mkdir()
    save_model(model, tok, tmp_path / "run" / "model")
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "run").eval()(ids).logits, model(ids).logits)


def test_tiny_sizes_and_config():
    n_params = {}
    for size in ("nano", "micro", "small"):
        cfg = tiny_config(size=size, arch="qwen2")
        assert cfg.vocab_size == 512 and cfg.eos_token_id == 1 and cfg.tie_word_embeddings
        n_params[size] = cfg.hidden_size * cfg.num_hidden_layers
    assert n_params["nano"] < n_params["micro"] < n_params["small"]
    assert tiny_config(load_tokenizer("tiny")).hidden_size == 64  # positional tokenizer
    assert tiny_config(vocab_size=1000).vocab_size == 1000
    with pytest.raises(RLFoundryError, match="Unknown tiny size"):
        tiny_config("huge")
    with pytest.raises(RLFoundryError, match="Unknown built-in model"):
        load_model("tiny:huge")


def test_missing_model_path_and_unavailable_hub_name(tmp_path):
    with pytest.raises(RLFoundryError, match="does not exist"):
        load_model(str(tmp_path / "nope"))
    with pytest.raises(RLFoundryError, match="does not exist"):
        load_tokenizer("./no/such/dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RLFoundryError, match="not a model directory"):
        load_model(tmp_path / "empty")
    with pytest.raises(RLFoundryError, match="not found locally and no hub access") as err:
        load_model("no-such-org/no-such-model-xyz", offline=True)
    assert "tiny:nano" in str(err.value)


def test_lora_trains_only_the_adapter_and_merges(tmp_path):
    torch.manual_seed(0)
    model = load_model("tiny", lora_rank=4, lora_target_modules="q_proj,v_proj")
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with pytest.raises(RLFoundryError, match="LoRA target modules"):
        load_model("tiny", lora_rank=4, lora_target_modules=["no_such_layer"])
    # non-zero adapter, then save merges it into a plain model with the same outputs
    for n, p in model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    model.eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        want = model(ids).logits
    save_model(model, load_tokenizer("tiny"), tmp_path / "m")
    merged = load_model(tmp_path / "m").eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, want, atol=1e-5)


def test_policy_logprobs_by_hand_and_padding_invariance():
    torch.manual_seed(0)
    model = load_model("tiny").eval()
    ids = torch.tensor([[9, 4, 5, 6, 7]])
    attn = torch.ones_like(ids)
    cm = torch.tensor([[0, 0, 0, 1, 1]], dtype=torch.bool)
    with torch.no_grad():
        logits = model(ids).logits[0]
        lp = policy_logprobs(model, ids, attn, cm)
    manual = [torch.log_softmax(logits[t - 1], -1)[ids[0, t]] for t in (3, 4)]
    assert lp[0, :3].eq(0).all()
    assert torch.allclose(lp[0, 3:], torch.stack(manual), atol=1e-6)
    # the same row left-padded and right-padded inside a batch: same numbers
    pad = 0
    left = torch.tensor([[pad, pad, 9, 4, 5, 6, 7]])
    right = torch.tensor([[9, 4, 5, 6, 7, pad, pad]])
    lm = torch.tensor([[0, 0, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        a = policy_logprobs(model, left, lm, torch.tensor([[0, 0, 0, 0, 0, 1, 1]]).bool())
        b = policy_logprobs(model, right, lm.flip(1), torch.tensor([[0, 0, 0, 1, 1, 0, 0]]).bool())
    assert torch.allclose(a[0, 5:], lp[0, 3:], atol=1e-5)
    assert torch.allclose(b[0, 3:5], lp[0, 3:], atol=1e-5)
    # temperature divides the logits
    with torch.no_grad():
        hot = policy_logprobs(model, ids, attn, cm, temperature=2.0)
    assert torch.allclose(hot[0, 4], torch.log_softmax(logits[3] / 2, -1)[7], atol=1e-6)


def test_value_head_shape_and_zero_start():
    head = ValueHead(64)
    v = head(torch.randn(3, 5, 64))
    assert v.shape == (3, 5) and v.eq(0).all()


# ---------------------------------------------------------------------- tasks


def test_arithmetic_reward_and_reference_by_hand():
    t = get_task("arithmetic")
    assert t.reference("17+25=") == "42"
    assert t.reward("17+25=", "42") == 1.0
    assert t.reward("17+25=", " 42 ") == 1.0  # stripped
    assert t.reward("17+25=", "42<eos>junk") == 1.0  # up to EOS
    assert t.reward("17+25=", "43") == 0.0
    assert t.reward("17+25=", "420") == 0.0
    assert t.reward("17+25=", "") == 0.0
    assert get_task("arithmetic:ops=-*").reference("3-10=") == "-7"
    assert get_task("arithmetic:ops=-*").reference("12*12=") == "144"
    with pytest.raises(RLFoundryError, match="not of the form"):
        t.reward("what is 2+2?", "4")


@pytest.mark.parametrize(
    "spec", ["arithmetic", "arithmetic:digits=1", "arithmetic:digits=4,ops=+-"]
)
def test_arithmetic_splits_are_disjoint_and_deterministic(spec):
    t = get_task(spec)
    n = 300 if t.digits > 1 else 1000
    train = t.prompts("train", n, seed=0) + t.prompts("train", n, seed=1)
    test = t.prompts("test", n, seed=0) + t.prompts("test", n, seed=5)
    assert set(train).isdisjoint(test)
    assert all(held_out(p, t.test_fraction) for p in test)
    assert t.prompts("test", 50, seed=3) == t.prompts("test", 50, seed=3)
    want = 200 if t.digits > 1 else 88  # 1 digit: 88 of the 100 problems are in train
    assert len(set(t.prompts("train", 200, seed=0))) == want
    ops = {ch for p in train for ch in "+-*" if ch in p}
    assert ops == set(t.ops)
    if t.digits == 1:  # 100 problems: both splits together are all of them
        assert len(set(train) | set(test)) == 100


def test_sentiment_reward_and_pairs():
    t = get_task("sentiment")
    assert t.reward("The movie was", " really great!") > 0.5
    assert t.reward("The movie was", " awful and boring.") < -0.5
    assert t.reward("The movie was", " not good.") < 0  # VADER handles negation
    assert t.reward("x", " great!<eos> awful awful") == t.reward("x", " great!")
    pairs = t.pairs("train", 100, seed=0)
    assert len(pairs) == 100 and set(pairs[0]) == {"prompt", "chosen", "rejected"}
    for p in pairs:
        assert t.score(p["chosen"]) >= t.score(p["rejected"]) + t.min_gap
    test_prompts = {p["prompt"] for p in t.pairs("test", 50, seed=0)}
    assert test_prompts.isdisjoint(p["prompt"] for p in pairs)
    assert t.is_correct("x", t.reference("The pasta was"))


def test_format_reward_and_its_documented_hack():
    t = get_task("format")
    assert t.reference("17+25=") == "<answer>42</answer>"
    assert t.reward("17+25=", "<answer>42</answer>") == pytest.approx(1.25)
    assert t.reward("17+25=", "<answer>41</answer>") == pytest.approx(0.25)
    assert t.reward("17+25=", "42") == 0.0
    # the hack: empty tags pay, and repeated tags pay more than a correct answer
    assert t.reward("17+25=", "<answer></answer>") == pytest.approx(0.25)
    assert t.reward("17+25=", "<answer></answer>" * 8) > t.reward("17+25=", "<answer>42</answer>")
    strict = get_task("format:strict=true")
    assert strict.reward("17+25=", "<answer>42</answer>") == 1.0
    assert strict.reward("17+25=", "<answer></answer>" * 8) == 0.0
    assert strict.reward("17+25=", "<answer>42</answer><answer>42</answer>") == 0.0
    assert t.is_correct("17+25=", "<answer>42</answer>")


def test_get_task_errors():
    with pytest.raises(RLFoundryError, match="arithmetic, sentiment, format"):
        get_task("poetry")
    with pytest.raises(RLFoundryError, match="Bad setting"):
        get_task("arithmetic:colour=red")
    with pytest.raises(RLFoundryError, match="digits must be"):
        get_task("arithmetic:digits=0")
    with pytest.raises(RLFoundryError, match="Unknown split"):
        get_task("arithmetic").prompts("validation", 3)


class ReverseTask:
    """The worked example of docs/CONTRIBUTING.md: write four digits backwards. No base
    class: having the attributes of `tasks.Task` is what makes it a task."""

    name = "reverse"
    max_new_tokens = 6  # four digits and the EOS, with room to spare

    def prompts(self, split="train", n=None, seed=0):
        rng, out = np.random.default_rng(seed), []
        while len(out) < (n or 200):
            p = "".join(map(str, rng.integers(0, 10, 4))) + ">"
            if held_out(p, 0.1) == (split == "test"):  # disjoint splits, whatever the seed
                out.append(p)
        return out

    def is_correct(self, prompt, completion):
        return completion.strip() == prompt[:-1][::-1]

    def reward(self, prompt, completion):
        return float(self.is_correct(prompt, completion))

    def sft_examples(self, split="train", n=None, seed=0):
        return [(p, p[:-1][::-1]) for p in self.prompts(split, n, seed)]

    def corpus(self, split="train", n=None, seed=0):
        return [p + c for p, c in self.sft_examples(split, n, seed)]


def test_builtin_tasks_satisfy_the_task_protocol():
    for name in TASKS:
        assert isinstance(get_task(name), Task), name
    assert isinstance(get_task("sentiment"), PreferenceTask)
    assert not isinstance(get_task("arithmetic"), PreferenceTask)
    assert not isinstance(object(), Task)


def test_a_new_task_plugs_into_rewards_evaluation_and_sft(tmp_path, monkeypatch):
    from rlfoundry.api import train
    from rlfoundry.llm.evaluation import evaluate_accuracy
    from rlfoundry.llm.rewards import parse_reward

    task = ReverseTask()
    assert isinstance(task, Task)
    assert parse_reward("task", task=task)(["1234>", "1234>"], ["4321", "1234"]) == [1.0, 0.0]
    torch.manual_seed(0)
    acc = evaluate_accuracy(load_model("tiny").eval(), load_tokenizer("tiny"), task, n=8)
    assert 0.0 <= acc <= 1.0
    monkeypatch.setitem(TASKS, "reverse", ReverseTask)  # the registry line of a built-in
    assert isinstance(get_task("reverse"), ReverseTask)
    s = train(
        "llm-sft",
        out=tmp_path / "sft",
        overrides={"task": "reverse", "total_steps": 2, "batch_size": 4, "eval_size": 4},
        progress=False,
    )
    assert s["status"] == "finished" and 0.0 <= s["eval_accuracy"] <= 1.0


def test_next_batch_walks_seeded_epochs():
    rng, ref = np.random.default_rng(0), np.random.default_rng(0)
    first, second = ref.permutation(5), ref.permutation(5)
    order, cursor = rng.permutation(5), 0
    idx, order, cursor = next_batch(rng, order, cursor, 5, 3)
    assert idx == first[:3].tolist() and cursor == 3
    idx, order, cursor = next_batch(rng, order, cursor, 5, 3)  # crosses into a new epoch
    assert idx == first[3:].tolist() + second[:1].tolist() and cursor == 1
    assert order.tolist() == second.tolist()


def test_load_jsonl_names_the_missing_field_and_line(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completion": "d"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert load_jsonl(path, ["prompt", "completion"]) == rows
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"prompt": "c"}) + "\n")
    with pytest.raises(RLFoundryError, match="line 2 has no field 'completion'"):
        load_jsonl(path, ["prompt", "completion"])
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(RLFoundryError, match="line 2 is not valid JSON"):
        load_jsonl(path, ["prompt"])
    path.write_text('{"prompt": 3}\n')
    with pytest.raises(RLFoundryError, match="line 1: field 'prompt' is int"):
        load_jsonl(path, ["prompt"])
    with pytest.raises(RLFoundryError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl", ["prompt"])
    path.write_text("\n")
    with pytest.raises(RLFoundryError, match="holds no rows"):
        load_jsonl(path, ["prompt"])
