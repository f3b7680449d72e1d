"""Data the way TRL users have it: every file format, the standard column formats (text
and conversational), chat templates, dataset columns reaching reward functions, `llm
eval` on any dataset with any reward, and the one-sentence errors of bad data. Each file
in examples/ is used here."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from rlfoundry.api import train
from rlfoundry.cli.main import main
from rlfoundry.errors import RLFoundryError
from rlfoundry.llm import datasets as llm_datasets
from rlfoundry.llm.chat_format import render_prompt
from rlfoundry.llm.data import collate, encode_examples, load_examples, load_pairs
from rlfoundry.llm.datasets import load_table, require
from rlfoundry.llm.models import load_model, load_tokenizer
from rlfoundry.llm.rewards import parse_reward
from rlfoundry.llm.verifiers import last_number, numeric_match

torch.set_num_threads(1)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TINY_RL = {"model": "tiny", "eval_every": 0, "eval_size": 4, "max_new_tokens": 6}
TINY_RL_SIZES = {"rollout_size": 8, "group_size": 4}
TINY_SFT = {"total_steps": 2, "batch_size": 4, "eval_every": 0, "eval_size": 4, "task": ""}

# ChatML with the tokenizer's EOS closing every turn (as SmolLM2 and Qwen2.5 do)
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<eos>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture
def chat_model(tmp_path):
    """A tiny model directory whose tokenizer has a chat template."""
    torch.manual_seed(0)
    out = tmp_path / "chat-model"
    tok = load_tokenizer("tiny")
    tok.chat_template = CHATML
    load_model("tiny").save_pretrained(out)
    tok.save_pretrained(out)
    assert load_tokenizer(out).chat_template == CHATML
    return out


def _prompts_with_answers() -> dict[str, int]:
    with open(EXAMPLES / "grpo_prompts.csv", newline="") as f:
        return {r["prompt"]: int(r["answer"]) for r in csv.DictReader(f)}


# ---------------------------------------------------------------------- formats


def test_every_file_format_reads_the_same_rows(tmp_path):
    import datasets

    rows = load_table(EXAMPLES / "sft_pairs.jsonl").rows
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with open(tmp_path / "d.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["prompt", "completion"])
        w.writeheader()
        w.writerows(rows)
    ds = datasets.Dataset.from_list(rows)
    ds.to_parquet(str(tmp_path / "d.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    for name in ("d.json", "d.csv", "d.parquet", "saved", "dd"):
        assert load_table(tmp_path / name).rows == rows, name
    assert load_table(f"{tmp_path / 'dd'}@test").rows == rows[:1]
    with pytest.raises(RLFoundryError, match="no split 'dev'; its splits are train, test"):
        load_table(f"{tmp_path / 'dd'}@dev")
    assert require(load_table(tmp_path / "d.parquet"), "sft") == ("prompt", "completion")
    assert require(load_table(EXAMPLES / "chat_messages.jsonl"), "sft") == ("messages",)
    assert require(load_table(EXAMPLES / "corpus.jsonl"), "sft") == ("text",)
    assert require(load_table(EXAMPLES / "grpo_prompts.csv"), "prompts") == ("prompt",)


def test_hub_name_offline_and_missing_files_fail_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setattr(llm_datasets, "hub_reachable", lambda timeout=3.0: False)
    for name in ("someorg/some-dataset", "gsm8k:main@test"):
        with pytest.raises(RLFoundryError) as err:
            train("llm-sft", out=tmp_path / "a", progress=False, data=name, task="")
        msg = str(err.value)
        assert f"'{name}' is not a local file or directory" in msg
        assert "Hugging Face Hub is unreachable" in msg and "pass a local file" in msg
        assert msg.count(". ") == 0 and "\n" not in msg  # one sentence
    with pytest.raises(RLFoundryError, match="Data file 'nope/prompts.parquet' does not exist"):
        train("llm-grpo", out=tmp_path / "b", progress=False, prompts="nope/prompts.parquet",
              **TINY_RL)  # fmt: skip
    (tmp_path / "d.txt").write_text("hello\n")
    with pytest.raises(RLFoundryError, match=r"not a data format .* use \.jsonl, \.json, \.csv"):
        load_table(tmp_path / "d.txt")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_missing_column_names_the_columns_found_and_needed(tmp_path):
    bad = tmp_path / "qa.csv"
    bad.write_text("question,response\n1+1=,2\n")
    with pytest.raises(RLFoundryError) as err:
        train("llm-sft", out=tmp_path / "a", progress=False, data=str(bad), task="")
    assert str(err.value) == (
        f"Dataset '{bad}' has the columns question, response, but SFT needs messages or "
        "prompt+completion or text; rename its columns to one of these formats (docs/llm.md, "
        "'Data formats')."
    )
    with pytest.raises(RLFoundryError, match="has the columns question, response, but RL prompts"):
        train("llm-grpo", out=tmp_path / "b", progress=False, prompts=str(bad), **TINY_RL)
    with pytest.raises(RLFoundryError, match="but preference training needs prompt\\+chosen"):
        train("llm-dpo", out=tmp_path / "c", progress=False, model="tiny", data=str(bad))
    # a reward that needs a column the prompts lack: named before anything is written
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "1+1=", "id": 3}) + "\n")
    with pytest.raises(RLFoundryError, match="'numeric_match' needs the dataset column"):
        train(
            "llm-grpo",
            out=tmp_path / "d",
            progress=False,
            **{**TINY_RL, "prompts": str(prompts), "reward": "numeric_match"},
        )
    # a bad value in a row names the row
    with pytest.raises(RLFoundryError, match="line 1: field 'messages' is str, not a list of"):
        (tmp_path / "m.jsonl").write_text(json.dumps({"messages": "hi"}) + "\n")
        require(load_table(tmp_path / "m.jsonl"), "sft")
    for name in "abcd":
        assert not (tmp_path / name).exists()


# ---------------------------------------------------------------------- chat formats


def test_messages_sft_trains_only_the_assistant_turns(chat_model, tmp_path):
    tok = load_tokenizer(chat_model)
    examples = load_examples(EXAMPLES / "chat_messages.jsonl")
    rows = encode_examples(tok, examples, max_len=256)
    ids, attn, cmask = collate(rows, tok.pad_token_id)  # [B, L] each
    for i, (_, conv) in enumerate(examples):
        # the completion mask covers exactly the assistant contents, each with its EOS
        want = "".join(m["content"] + "<eos>" for m in conv if m["role"] == "assistant")
        assert tok.decode(ids[i][cmask[i]]) == want
        assert not cmask[i][~attn[i].bool()].any()
        # what precedes the first target is what the model reads at inference
        first = next(j for j, m in enumerate(conv) if m["role"] == "assistant")
        n_ctx = int(cmask[i].long().argmax())
        assert tok.decode(ids[i, :n_ctx]) == render_prompt(tok, conv[:first])
        assert render_prompt(tok, conv[:first]).endswith("<|im_start|>assistant\n")
    # without a template: plain text, and a one-turn conversation is its prompt/completion pair
    plain = load_tokenizer("tiny")
    one = [{"role": "user", "content": "12+7="}, {"role": "assistant", "content": "19"}]
    assert encode_examples(plain, [([], one)], 64) == encode_examples(plain, [("12+7=", "19")], 64)
    rows = encode_examples(plain, examples[1:2], 64)
    ids, attn, cmask = collate(rows, plain.pad_token_id)
    assert plain.decode(ids[0][cmask[0]]) == "48<eos>50<eos>"
    assert plain.decode(ids[0][attn[0].bool()]) == "3+45=48<eos>\nand 48+2=50<eos>"
    # the SFT stage trains on the conversations and keeps the template in the saved model
    out = tmp_path / "sft"
    data = str(EXAMPLES / "chat_messages.jsonl")
    s = train("llm-sft", out=out, progress=False, model=str(chat_model), data=data, **TINY_SFT)
    assert s["status"] == "finished" and s["eval_loss"] > 0
    assert load_tokenizer(out).chat_template == CHATML


def test_a_template_that_writes_bos_does_not_get_it_twice():
    class BosTok:  # a Llama-3-like tokenizer: adds BOS on encode, and its template writes it
        bos_token, bos_token_id, eos_token = "<s>", 1, "</s>"
        chat_template = "yes"

        def encode(self, text, add_special_tokens=True):
            return [1] if add_special_tokens else []

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            body = "".join(f"[{m['role']}]{m['content']}</s>" for m in messages)
            return "<s>" + body + ("[assistant]" if add_generation_prompt else "")

    tok = BosTok()
    assert render_prompt(tok, [{"role": "user", "content": "hi"}]) == "[user]hi</s>[assistant]"
    tok.encode = lambda text, add_special_tokens=True: []  # a tokenizer that adds no BOS
    assert render_prompt(tok, [{"role": "user", "content": "hi"}]).startswith("<s>[user]")


def test_sft_and_pretrain_read_the_example_files(tmp_path):
    s = train("llm-sft", out=tmp_path / "s", progress=False, data=str(EXAMPLES / "sft_pairs.jsonl"),
              **TINY_SFT)  # fmt: skip
    assert s["status"] == "finished"
    s = train(
        "llm-pretrain",
        out=tmp_path / "p",
        progress=False,
        task="",
        corpus=str(EXAMPLES / "corpus.jsonl"),
        total_steps=2,
        batch_size=4,
        eval_every=0,
    )
    assert s["status"] == "finished"


def test_preference_pairs_text_and_conversational(chat_model, tmp_path):
    from types import SimpleNamespace

    cfg = SimpleNamespace(
        data=str(EXAMPLES / "preferences_chat.jsonl"),
        eval_data="",
        task="",
        eval_fraction=0.2,
        eval_pairs=0,
        seed=0,
    )
    train_pairs, held = load_pairs(cfg)  # implicit prompt: the shared first turn
    assert len(train_pairs) + len(held) == 6
    pair = train_pairs[0]
    assert [m["role"] for m in pair["prompt"]] == ["user"]
    assert pair["chosen"][0]["role"] == pair["rejected"][0]["role"] == "assistant"
    for data in ("preferences.jsonl", "preferences_chat.jsonl"):
        s = train(
            "llm-dpo",
            out=tmp_path / data,
            progress=False,
            model=str(chat_model),
            data=str(EXAMPLES / data),
            total_steps=2,
            batch_size=4,
            eval_every=2,
        )
        assert s["status"] == "finished" and s["eval_pairs"] >= 1


# ---------------------------------------------------------------------- columns -> rewards

CALLS: list[tuple[str, object]] = []


def record_answer(prompt, completion, answer):
    """A per-pair reward that records which `answer` arrived with which prompt."""
    CALLS.append((prompt, answer))
    return 0.0


def record_batch(prompts, completions, **columns):
    """TRL-style: a batch and every column as a keyword list."""
    CALLS.append(("batch", sorted(columns)))
    assert all(len(v) == len(prompts) for v in columns.values())
    return [0.5] * len(prompts)


def test_a_dataset_column_reaches_the_reward_through_a_parquet_file(tmp_path):
    import datasets

    parquet = tmp_path / "prompts.parquet"
    with open(EXAMPLES / "grpo_prompts.csv", newline="") as f:
        rows = [{"prompt": r["prompt"], "answer": int(r["answer"])} for r in csv.DictReader(f)]
    datasets.Dataset.from_list(rows).to_parquet(str(parquet))
    CALLS.clear()
    s = train(
        "llm-grpo",
        out=tmp_path / "g",
        progress=False,
        **{
            **TINY_RL,
            **TINY_RL_SIZES,
            "total_steps": 2,
            "prompts": str(parquet),
            "reward": [f"{__name__}:record_answer", f"0.1*{__name__}:record_batch"],
        },
    )
    assert s["status"] == "finished"
    truth = _prompts_with_answers()
    pairs = [c for c in CALLS if c[0] != "batch"]
    assert len(pairs) == 2 * 8  # 2 steps x rollout_size completions, each with its answer
    assert all(answer == truth[prompt] for prompt, answer in pairs)
    assert ("batch", ["answer"]) in CALLS


def test_grpo_on_the_csv_example_with_the_custom_reward_module(tmp_path):
    reward = f"{EXAMPLES / 'my_reward.py'}:close_to_answer"
    argv = ["llm", "grpo", "--model", "tiny", "--data", str(EXAMPLES / "grpo_prompts.csv")]
    argv += ["--reward", reward, "--reward", f"0.1*{EXAMPLES / 'my_reward.py'}:brevity"]
    argv += ["--steps", "1", "--out", str(tmp_path / "g"), "--no-progress", "--json"]
    for kv in ("rollout_size=8", "group_size=4", "eval_every=0", "eval_size=4", "max_new_tokens=6"):
        argv += ["--set", kv]
    assert main(argv) == 0
    header = (tmp_path / "g" / "metrics.csv").read_text().splitlines()[0]
    assert "reward/" in header and "close_to_answer" in header


def test_conversational_prompts_get_the_chat_template(chat_model, tmp_path):
    CALLS.clear()
    s = train(
        "llm-grpo",
        out=tmp_path / "g",
        progress=False,
        **{
            **TINY_RL,
            **TINY_RL_SIZES,
            "model": str(chat_model),
            "total_steps": 1,
            "prompts": str(EXAMPLES / "grpo_chat_prompts.jsonl"),
            "reward": f"{__name__}:record_answer",
        },
    )
    assert s["status"] == "finished"
    truth = _prompts_with_answers()
    assert len(CALLS) == 8
    for prompt, answer in CALLS:
        assert prompt.startswith("<|im_start|>system\nAnswer with a number.<eos>\n")
        assert prompt.endswith("<|im_start|>assistant\n")
        question = prompt.split("<|im_start|>user\n")[1].split("<eos>")[0]
        assert truth[question] == answer


# ---------------------------------------------------------------------- verifiers and eval


def test_numeric_match_reads_the_last_number():
    assert last_number("3 apples and 4 more make 7.") == 7.0
    assert last_number("so #### 1,234") == 1234.0 and last_number("-2.5 or") == -2.5
    assert last_number("none") is None
    assert numeric_match("q", "The answer is 36", 36) == 1.0
    assert numeric_match("q", "The answer is 36", "Half of 72 is #### 36") == 1.0
    assert numeric_match("q", "36 or 37", "36") == 0.0
    assert numeric_match("q", "no idea", 36) == 0.0
    r = parse_reward("numeric_match")
    assert r(["a", "b"], ["is 7", "is 8"], answer=[7, 7]) == [1.0, 0.0]
    assert r.accuracy(["a", "b"], ["is 7", "is 8"]) == {"accuracy": 0.5}
    with pytest.raises(RLFoundryError, match="neither a built-in .*numeric_match.* nor"):
        parse_reward("numeric_mach")


def test_judge_templates_may_name_dataset_columns():
    from rlfoundry.llm.judge import check_template

    # the columns a template names (tests/llm/test_judge.py sends them to a live judge)
    assert check_template("Q: {prompt}\nA: {completion}\nRef: {answer}") == ("answer",)
    with pytest.raises(RLFoundryError, match="has no \\{completion\\}"):  # before any request
        parse_reward("judge:http://127.0.0.1:1/v1", judge_template="{prompt} {answer}")


def from_column(prompt, completion, ok):
    return float(ok)


from_column.verifier = True


def test_eval_scores_any_dataset_with_any_reward(tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("prompt,ok\n" + "".join(f"{i}+1=,{int(i % 4 != 0)}\n" for i in range(10)))
    argv = ["llm", "eval", "tiny", "--data", str(data), "--reward", f"{__name__}:from_column"]
    assert main([*argv, "--batch-size", "3", "--json", "--save", str(tmp_path / "s.jsonl")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 10 and res["mean_reward"] == pytest.approx(0.7)
    assert res["accuracy"] == pytest.approx(0.7)  # a verifier: the share of 1.0s
    saved = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in saved] == [float(i % 4 != 0) for i in range(10)]
    # the shipped examples: a built-in verifier and the custom module, on the CSV
    csv_data = str(EXAMPLES / "grpo_prompts.csv")
    assert main(["llm", "eval", "tiny", "--data", csv_data, "--reward", "numeric_match",
                 "-n", "4", "--max-new-tokens", "4", "--json"]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert res["n"] == 4 and 0 <= res["accuracy"] <= 1 and res["reward"] == "numeric_match"
    reward = f"{EXAMPLES / 'my_reward.py'}:close_to_answer"
    assert main(["llm", "eval", "tiny", "--data", csv_data, "--reward", reward, "-n", "4",
                 "--max-new-tokens", "4", "--json"]) == 0  # fmt: skip
    res = json.loads(capsys.readouterr().out)
    assert "accuracy" not in res and 0 <= res["mean_reward"] <= 1
    # errors: nothing to score with, a column the reward needs
    assert main(["llm", "eval", "tiny", "--data", csv_data]) == 2
    assert "give --reward" in capsys.readouterr().err
    assert main(["llm", "eval", "tiny", "--data", str(data), "--reward", "numeric_match"]) == 2
    assert "needs the dataset column(s) answer" in capsys.readouterr().err


def test_llm_list_prints_every_config_key(capsys):
    from rlfoundry.llm import grpo
    from rlfoundry.runtime.config import describe

    assert main(["llm", "list", "grpo"]) == 0
    text = capsys.readouterr().out
    assert "llm-grpo config" in text
    for name, *_ in describe(grpo.Config):
        assert name in text, name
    assert main(["llm", "list"]) == 0
    assert "reward-model" in capsys.readouterr().out
