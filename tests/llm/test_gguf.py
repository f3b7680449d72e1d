"""GGUF import: a tiny Llama written to GGUF the way llama.cpp's converter writes it comes
back from `import_gguf` as an HF directory with the same logits, tokenizer and chat
template; every bad input is refused with one sentence and leaves nothing on disk."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from needs import need

gguf = need("gguf", "llm")
transformers = need("transformers", "llm")

from rlfoundry.errors import ConfigError  # noqa: E402
from rlfoundry.llm import gguf as gguf_import  # noqa: E402
from rlfoundry.llm.gguf import cmd_import_gguf, import_gguf  # noqa: E402

torch.set_num_threads(1)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "twelve plus seven is nineteen, and 12 + 7 = 19",
    "a language model predicts the next token of the text",
    "reinforcement learning from human feedback aligns the model",
] * 4
SAMPLE = "the lazy model jumps: 12 + 7 = 19!"


def bpe_tokenizer():
    """A byte-level BPE (GPT-2 style) of ~300 tokens, trained on CORPUS, specials at 0-2."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    return tok


def llama(vocab_size: int, tied: bool):
    """A seeded 2-layer Llama with GQA (4 query heads, 2 KV heads) and non-trivial norms."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=128,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=tied,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # init is all ones, which would hide a swapped norm
                p.uniform_(0.5, 1.5)
    return model


def permute(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's Q/K row order for its rotary kernel: convert_hf_to_gguf.py,
    `LlamaModel.permute`. transformers' GGUF loader undoes it (`_reverse_permute_weights`)."""
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def llama_cpp_tensors(model) -> dict[str, np.ndarray]:
    """The model's weights under llama.cpp's tensor names (`gguf.constants.TENSOR_NAMES`)."""
    cfg = model.config
    sd = {k: v.detach().float() for k, v in model.state_dict().items()}
    out = {
        "token_embd.weight": sd["model.embed_tokens.weight"],
        "output_norm.weight": sd["model.norm.weight"],
    }
    if not cfg.tie_word_embeddings:
        out["output.weight"] = sd["lm_head.weight"]
    names = {
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(cfg.num_hidden_layers):
        for short, hf in names.items():
            w = sd[f"model.layers.{i}.{hf}.weight"]
            if short == "attn_q":
                w = permute(w, cfg.num_attention_heads)
            elif short == "attn_k":
                w = permute(w, cfg.num_key_value_heads)
            out[f"blk.{i}.{short}.weight"] = w
    return {k: np.ascontiguousarray(v.numpy()) for k, v in out.items()}


def write_gguf(path, arch="llama", model=None, tok=None, tensors=None, kind=None):
    """A GGUF file as llama.cpp writes it: `arch` hyper-parameters from `model`'s config,
    a gpt2-style tokenizer from `tok`, and `tensors` (default: the model's, renamed)."""
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    if kind is not None:
        w.add_type(kind)
    if model is not None:
        c = model.config
        w.add_block_count(c.num_hidden_layers)
        w.add_context_length(c.max_position_embeddings)
        w.add_embedding_length(c.hidden_size)
        w.add_feed_forward_length(c.intermediate_size)
        w.add_head_count(c.num_attention_heads)
        w.add_head_count_kv(c.num_key_value_heads)
        w.add_rope_dimension_count(c.head_dim)
        w.add_rope_freq_base(10000.0)
        w.add_layer_norm_rms_eps(c.rms_norm_eps)
        w.add_vocab_size(c.vocab_size)
        w.add_file_type(gguf.LlamaFileType.ALL_F32)
    if tok is not None:
        spec = json.loads(tok.to_str())["model"]
        tokens = [t for t, _ in sorted(spec["vocab"].items(), key=lambda kv: kv[1])]
        merges = [m if isinstance(m, str) else " ".join(m) for m in spec["merges"]]
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("gpt2")
        w.add_token_list(tokens)
        types = [gguf.TokenType.CONTROL if t in SPECIALS else gguf.TokenType.NORMAL for t in tokens]
        w.add_token_types(types)
        w.add_token_merges(merges)
        w.add_bos_token_id(SPECIALS.index("<|im_start|>"))
        w.add_eos_token_id(SPECIALS.index("<|im_end|>"))
        w.add_pad_token_id(SPECIALS.index("<|im_end|>"))
        w.add_add_bos_token(False)
        w.add_chat_template(CHAT_TEMPLATE)
    if tensors is None:
        tensors = llama_cpp_tensors(model) if model is not None else {}
    for name, value in tensors.items():
        w.add_tensor(name, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tok():
    return bpe_tokenizer()


@pytest.mark.parametrize("tied", [False, True])
def test_round_trip_logits_tokenizer_and_chat_template(tmp_path, tok, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = llama(tok.get_vocab_size(), tied)
    path = write_gguf(tmp_path / "tiny.gguf", model=src, tok=tok)
    out = import_gguf(path, tmp_path / "models" / "tiny")
    assert out == tmp_path / "models" / "tiny"
    assert list((tmp_path / "models").iterdir()) == [out]  # no temporary directory left
    assert list(out.glob("*.safetensors")) and (out / "config.json").is_file()
    assert "quantization_config" not in json.loads((out / "config.json").read_text())

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    assert model.config.tie_word_embeddings == tied
    assert model.dtype == torch.float32
    assert gguf_import.parameter_count(out) == sum(p.numel() for p in src.parameters())
    ids = torch.tensor([tok.encode(SAMPLE).ids])
    with torch.no_grad():
        want, got = src(ids).logits, model(ids).logits
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5), (got - want).abs().max()

    hf_tok = AutoTokenizer.from_pretrained(out)
    assert hf_tok(SAMPLE)["input_ids"] == tok.encode(SAMPLE).ids
    assert (hf_tok.bos_token, hf_tok.eos_token, hf_tok.pad_token) == (
        "<|im_start|>",
        "<|im_end|>",
        "<|im_end|>",
    )
    chat = hf_tok.apply_chat_template(
        [{"role": "user", "content": "What is 12+7?"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nWhat is 12+7?<|im_end|>\n<|im_start|>assistant\n"
    # the chat markers are single special tokens, not spelled out in bytes
    assert hf_tok("<|im_start|>user")["input_ids"][0] == SPECIALS.index("<|im_start|>")


def test_cli_summary_line(tmp_path, tok, capsys):
    path = write_gguf(tmp_path / "tiny.gguf", model=llama(tok.get_vocab_size(), True), tok=tok)
    args = argparse.Namespace(gguf=str(path), out=str(tmp_path / "out"))
    assert cmd_import_gguf(args) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and "llama" in line and "chat template yes" in line, line


def _refused(tmp_path, src, match, out=None):
    out = out or tmp_path / "new" / "model"
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match=match) as err:
        import_gguf(src, out)
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    return err


def test_missing_file(tmp_path):
    _refused(tmp_path, tmp_path / "nope.gguf", "does not exist")
    (tmp_path / "dir.gguf").mkdir()
    _refused(tmp_path, tmp_path / "dir.gguf", "is a directory, not a GGUF file")


def test_not_a_gguf(tmp_path):
    (tmp_path / "model.gguf").write_text("this is a text file, not a model")
    _refused(tmp_path, tmp_path / "model.gguf", "not a GGUF file")


def test_truncated_gguf(tmp_path, tok):
    path = write_gguf(tmp_path / "tiny.gguf", model=llama(tok.get_vocab_size(), True), tok=tok)
    path.write_bytes(path.read_bytes()[:200])
    _refused(tmp_path, path, "truncated or corrupt")


def test_architecture_transformers_cannot_load(tmp_path):
    path = write_gguf(
        tmp_path / "bert.gguf",
        arch="bert",
        tensors={"token_embd.weight": np.zeros((4, 8), np.float32)},
    )
    _refused(tmp_path, path, "architecture 'bert'")


def test_not_a_causal_lm(tmp_path):
    path = write_gguf(
        tmp_path / "t5.gguf", arch="t5", tensors={"token_embd.weight": np.zeros((4, 8), np.float32)}
    )
    _refused(tmp_path, path, "'t5' model, which is not a causal language model")


def test_vocabulary_only_gguf(tmp_path, tok):
    path = write_gguf(
        tmp_path / "vocab.gguf", model=llama(tok.get_vocab_size(), True), tok=tok, tensors={}
    )
    _refused(tmp_path, path, "holds no weights")


def test_adapter_gguf(tmp_path, tok):
    path = write_gguf(
        tmp_path / "lora.gguf", model=llama(tok.get_vocab_size(), True), tok=tok, kind="adapter"
    )
    _refused(tmp_path, path, "GGUF 'adapter'")


def test_missing_weights(tmp_path, tok):
    model = llama(tok.get_vocab_size(), True)
    tensors = llama_cpp_tensors(model)
    del tensors["blk.1.ffn_down.weight"]
    path = write_gguf(tmp_path / "tiny.gguf", model=model, tok=tok, tensors=tensors)
    _refused(tmp_path, path, "lacks weights")


def test_existing_non_empty_out(tmp_path, tok):
    path = write_gguf(tmp_path / "tiny.gguf", model=llama(tok.get_vocab_size(), True), tok=tok)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _refused(tmp_path, path, "already exists and is not empty", out=out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    out.joinpath("keep.txt").unlink()
    assert import_gguf(path, out) == out  # an empty directory is fine


def test_failure_while_writing_leaves_nothing(tmp_path, tok, monkeypatch):
    path = write_gguf(tmp_path / "tiny.gguf", model=llama(tok.get_vocab_size(), True), tok=tok)

    def disk_full(model, tokenizer, directory):
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(gguf_import, "_save", disk_full)
    with pytest.raises(OSError, match="No space"):
        import_gguf(path, tmp_path / "a" / "b" / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.gguf"]  # parents removed too
