"""Language models as policies over tokens: built-in tiny models, loading, LoRA, log-probs.

    model = load_model("tiny:nano")                # random init, built-in tokenizer's vocab
    model = load_model("runs/sft")                 # a run directory (its model/) or model dir
    tok = load_tokenizer("runs/sft")
    logp = policy_logprobs(model, ids, attn, cmask)  # [B, L] log pi(token_t | tokens_<t)

Built-in names: "tiny" (= "tiny:nano"), "tiny:nano", "tiny:micro", "tiny:small",
optionally with an architecture, "tiny:nano:llama" (default qwen2). They are plain
transformers models built from a config (`tiny_config`), so everything that works on
a hub model works on them, and `save_pretrained` output loads with
`AutoModelForCausalLM.from_pretrained`.

A hub name ("Qwen/Qwen2.5-0.5B") is loaded from the local Hugging Face cache only
when `offline` (or HF_HUB_OFFLINE) is set; otherwise transformers may download it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlfoundry.errors import ConfigError, RLFoundryError
from rlfoundry.llm import lora
from rlfoundry.llm.decoder import train_logits

#: Sizes of the built-in family (hidden, MLP width, layers, heads, KV heads).
SIZES: dict[str, dict[str, int]] = {
    "nano": dict(
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "micro": dict(
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "small": dict(
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=8,
        num_key_value_heads=4,
    ),
}
ARCHS = ("qwen2", "llama")
BUILTIN_HINT = (
    "pass a local directory or one of the built-in tiny sizes ("
    + ", ".join(f"tiny:{s}" for s in SIZES)
    + ")"
)


def tiny_config(
    size: str | Any = "nano",
    arch: str = "qwen2",
    vocab_size: int | None = None,
    *,
    tokenizer: Any = None,
    max_position_embeddings: int = 256,
    **overrides: Any,
) -> Any:
    """A transformers config of the built-in family: `size` in SIZES, `arch` in ARCHS.

    Special-token ids and (unless `vocab_size` is given) the vocabulary size come from
    `tokenizer` (default: the built-in one). `tiny_config(tok)` is shorthand for
    `tiny_config("nano", tokenizer=tok)`. Embeddings are tied: at this size the
    embedding matrix is most of the parameters.
    """
    if not isinstance(size, str):
        size, tokenizer = "nano", size
    if size not in SIZES:
        raise RLFoundryError(f"Unknown tiny size '{size}'; use one of {', '.join(SIZES)}.")
    if arch not in ARCHS:
        raise RLFoundryError(f"Unknown architecture '{arch}'; use one of {', '.join(ARCHS)}.")
    if tokenizer is None:
        from rlfoundry.llm.tokenizer import tiny_tokenizer

        tokenizer = tiny_tokenizer()
    kwargs: dict[str, Any] = dict(
        vocab_size=vocab_size or len(tokenizer),
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        attention_dropout=0.0,
        **SIZES[size],
    )
    kwargs.update(overrides)
    if arch == "qwen2":
        from transformers import Qwen2Config

        return Qwen2Config(**kwargs)
    from transformers import LlamaConfig

    return LlamaConfig(**kwargs)


def parse_builtin(name: str) -> tuple[str, str] | None:
    """ "tiny" / "tiny:SIZE" / "tiny:SIZE:ARCH" -> (size, arch); None for other names."""
    parts = name.split(":")
    if parts[0] != "tiny" or len(parts) > 3:
        return None
    size = parts[1] if len(parts) > 1 and parts[1] else "nano"
    arch = parts[2] if len(parts) > 2 else "qwen2"
    if size not in SIZES or arch not in ARCHS:
        raise RLFoundryError(
            f"Unknown built-in model '{name}'; use tiny:SIZE[:ARCH] with SIZE in "
            f"{', '.join(SIZES)} and ARCH in {', '.join(ARCHS)}."
        )
    return size, arch


def _looks_like_path(name: str) -> bool:
    """Paths start with . / ~ or have more than one '/'; "org/name" is a hub name."""
    return (
        name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep in name.replace("/", "")
    )


def resolve_model_dir(name: str | os.PathLike) -> Path | None:
    """A run directory (holding model/) or a model directory -> the model directory.

    None when `name` is not an existing local directory (a built-in or hub name).
    Raises when `name` is clearly a path but does not exist.
    """
    name = str(name)
    p = Path(name).expanduser()
    if (p / "model" / "config.json").is_file() or (p / "model" / "adapter_config.json").is_file():
        return check_weights(p / "model")
    if (p / "config.json").is_file() or (p / "adapter_config.json").is_file():
        return check_weights(p)
    if _unfinished_llm_run(p):
        from rlfoundry.runtime.rundir import resume_command

        raise RLFoundryError(
            f"'{p}' is a run that has not written its model yet (it writes {p}/model when it "
            f"finishes); finish it with `{resume_command(p)}`, or pass a finished run."
        )
    if p.exists():
        raise RLFoundryError(
            f"'{p}' is not a model directory (no config.json in it or in {p}/model); pass "
            "the output directory of an rlfoundry llm command or a saved transformers model."
        )
    if _looks_like_path(name):
        raise RLFoundryError(
            f"Model path '{name}' does not exist; {BUILTIN_HINT}, or a hub name such as "
            "'Qwen/Qwen2.5-0.5B'."
        )
    return None


def check_weights(path: Path) -> Path:
    """`path`, once every safetensors file in it is whole (read from the headers alone):
    a file cut short by a copy or a full disk is one sentence here, before any run
    directory is written, instead of safetensors' error deep inside `from_pretrained`."""
    from rlfoundry.runtime.checkpoint import check_layout

    for file in sorted(path.glob("*.safetensors")):
        try:
            check_layout(file)
        except ValueError as err:
            raise RLFoundryError(
                f"The model weights '{file}' are damaged: {err}; {_weights_fix(path)}."
            ) from None
    return path


def _weights_fix(path: Path) -> str:
    """What to do about a damaged model directory: a run that did not finish writes its
    model again on --resume (from its checkpoint); anything else is copied again."""
    from rlfoundry.runtime.checkpoint import CHECKPOINT
    from rlfoundry.runtime.rundir import finished_summary, resume_command

    run = path.parent
    if path.name == "model" and (run / CHECKPOINT).is_file() and not finished_summary(run):
        return (
            f"its run did not finish, so `{resume_command(run)}` writes it again from the "
            "run's checkpoint"
        )
    return "copy the model directory again from where it came from"


def _unfinished_llm_run(p: Path) -> bool:
    """`p` holds an LLM stage's run that stopped before it wrote `model/`."""
    if not (p / "config.yaml").is_file() or (p / "model").exists():
        return False
    from rlfoundry import registry
    from rlfoundry.runtime.rundir import finished_summary, read_saved

    try:
        name = read_saved(p)[0]
    except RLFoundryError:
        return False
    return name.startswith(registry.LLM_PREFIX) and not finished_summary(p)


def model_dir(name: str | os.PathLike) -> str:
    """A run directory (holding `model/`) or a model directory -> what `load_model` takes;
    built-in and hub names pass through unchanged."""
    return str(resolve_model_dir(name) or name)


def check_model_path(name: str, field: str = "model") -> None:
    """A starting model must be given, and a model given as a path must exist (built-in
    names such as 'tiny' pass). Raises before anything is written."""
    if not name:
        raise ConfigError(
            f"No starting model: set {field} to a model directory (e.g. the output of "
            "`rlfoundry llm sft`)."
        )
    resolve_model_dir(name)  # raises for a path that does not exist


def _offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return any(
        os.environ.get(k, "").lower() in ("1", "true", "yes")
        for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@contextlib.contextmanager
def quiet_progress() -> Iterator[None]:
    """No transformers progress bars ("Loading weights", "Writing model shards") inside:
    a tiny model loads in milliseconds, and the bars would drown the run's own."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def from_hub(cls: Any, name: str, offline: bool | None, what: str, **kwargs: Any) -> Any:
    """`cls.from_pretrained(name)`: from the local HF cache's snapshot directory when the
    repo is cached (no network at all), else a download unless offline."""
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id
        cached = None
    try:
        if isinstance(cached, str):
            return cls.from_pretrained(os.path.dirname(cached), **kwargs)
        if _offline(offline):
            raise OSError("not in the local cache")
        return cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as err:
        raise RLFoundryError(
            f"{what} '{name}' not found locally and no hub access; {BUILTIN_HINT}."
        ) from err


def load_model(
    name_or_dir: str | os.PathLike = "tiny",
    *,
    lora_rank: int = 0,
    lora_alpha: float | None = None,
    lora_target_modules: list[str] | str | None = None,
    lora_dropout: float = 0.0,
    dtype: torch.dtype | None = None,
    offline: bool | None = None,
) -> Any:
    """A causal LM: built-in tiny size, local (run or model) directory, or hub name.

    Built-in sizes are randomly initialised from torch's global RNG (seed it first).
    `lora_rank > 0` wraps the model in a peft LoRA adapter on `lora_target_modules`
    (default: attention and MLP projections); only the adapter trains, and
    `merge_lora` folds it back before saving.
    """
    name = str(name_or_dir)
    builtin = parse_builtin(name)
    with quiet_progress():
        model = _load(name, builtin, dtype, offline)
    if lora_rank > 0:
        model = add_lora(model, lora_rank, lora_alpha, lora_target_modules, lora_dropout)
    return model


def _load(name: str, builtin: tuple[str, str] | None, dtype: Any, offline: bool | None) -> Any:
    from transformers import AutoModelForCausalLM

    if builtin is not None:
        model = AutoModelForCausalLM.from_config(tiny_config(builtin[0], builtin[1]))
        if dtype is not None:
            model = model.to(dtype)
    else:
        path = resolve_model_dir(name)
        kwargs: dict[str, Any] = {"dtype": dtype} if dtype is not None else {}
        if path is not None and (path / "adapter_config.json").is_file():
            # the base named in adapter_config.json, then the adapter (peft's AutoPeftModel
            # would also resize the embeddings to the tokenizer's length)
            from peft import PeftModel

            base = _load(lora.adapter_base(path), None, dtype, offline)
            with warnings.catch_warnings():  # peft reads an attribute transformers 5 renamed
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
                model = PeftModel.from_pretrained(base, str(path))
        elif path is not None:
            model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
        else:
            model = from_hub(AutoModelForCausalLM, name, offline, "Model", **kwargs)
    return model


def add_lora(
    model: Any,
    rank: int,
    alpha: float | None = None,
    target_modules: list[str] | str | None = None,
    dropout: float = 0.0,
) -> Any:
    """Wrap `model` in a peft LoRA adapter (Hu et al. 2021): W + (alpha/rank) B A.
    See `lora.add_lora`; the default targets are the attention and MLP projections."""
    return lora.add_lora(model, rank, alpha, target_modules, dropout)


def merge_lora(model: Any) -> Any:
    """The plain model with any LoRA adapter folded into its weights (no-op otherwise)."""
    return lora.merged(model)


def load_tokenizer(name_or_dir: str | os.PathLike = "tiny", offline: bool | None = None) -> Any:
    """The tokenizer of a built-in name, a local (run or model) directory, or a hub name.

    Always a fresh object: callers may change its pad token without affecting others.
    Tokenizers without a pad token get pad = eos.
    """
    from transformers import AutoTokenizer

    name = str(name_or_dir)
    if parse_builtin(name) is not None:
        from rlfoundry.llm.tokenizer import tiny_tokenizer

        return tiny_tokenizer()
    path = resolve_model_dir(name)
    if path is not None:
        tok = AutoTokenizer.from_pretrained(str(path))
    else:
        tok = from_hub(AutoTokenizer, name, offline, "Tokenizer")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def save_model(model: Any, tok: Any, path: str | os.PathLike) -> Path:
    """`save_pretrained` of the (LoRA-merged) model as safetensors plus the tokenizer."""

    def save(tmp: Path) -> None:
        with quiet_progress():
            merge_lora(model).save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)

    return write_model_dir(path, save)


def write_model_dir(path: str | os.PathLike, save: Callable[[Path], None]) -> Path:
    """A model directory written whole or not at all: `save(tmp)` fills `.NAME.new.tmp` beside
    `path`, its files get the mode a plain open gives (safetensors writes 0600, which
    would keep a shared run unreadable to teammates), then it takes `path`'s place. A
    kill or a full disk meanwhile leaves the previous model (or none), never half of one."""
    from rlfoundry.runtime.config import file_mode

    path = Path(path)
    tmp = path.with_name(f".{path.name}.new.tmp")  # .*.tmp: not "files a user put there"
    old = path.with_name(f".{path.name}.old.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                os.chmod(f, file_mode())
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return path


def encode_prompt(tok: Any, prompt: str) -> list[int]:
    """Token ids of a plain prompt, with whatever special tokens the tokenizer adds by
    default (none for the built-in tokenizer; BOS for Llama-style ones)."""
    return tok.encode(prompt, add_special_tokens=True)


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions counted over real tokens only, so left padding does not shift them.
    `[B, L] -> [B, L]` (padding positions get 0; their outputs are never read)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class ValueHead(torch.nn.Module):
    """V(s_t) from the last hidden state: `[B, L, H] -> [B, L]` (for PPO's critic).

    Zero-initialised output, so the first value estimates are 0 and the first
    advantages are the rewards themselves rather than noise.
    """

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1)
        torch.nn.init.zeros_(self.linear.weight)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.linear(hidden).squeeze(-1)


def policy_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    completion_mask: Tensor,
    temperature: float = 1.0,
) -> Tensor:
    """log pi(x_t | x_<t) of the given tokens, one forward pass. `[B, L] -> [B, L]`.

    Position t holds the log-prob of `input_ids[:, t]` from the logits at t-1 (shifted
    by one); positions outside `completion_mask` hold 0. Only the positions from the
    first completion column on get logits (`logits_to_keep`), and log_softmax runs on
    that slice alone: the [B, L, V] logits of the prompt are never materialised.
    Logits are divided by `temperature` (the sampling distribution's log-probs).
    Position ids come from the attention mask, so left- and right-padded batches give
    the same numbers as unpadded rows.
    """
    B, L = input_ids.shape
    mask = completion_mask.bool()
    out = torch.zeros(B, L, dtype=torch.float32, device=input_ids.device)
    cols = mask.any(0).nonzero()
    if cols.numel() == 0:
        return out
    start = max(1, int(cols[0]))  # position 0 has no previous token
    keep = L - start + 1  # logits at positions start-1 .. L-1 (the last is dropped)
    kw = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        use_cache=False,
    )
    # Llama/Qwen2: the same forward without its plumbing (decoder.train_logits, same bits)
    logits = train_logits(model, input_ids, attention_mask, kw["position_ids"], keep)
    if logits is None:
        try:
            logits = model(**kw, logits_to_keep=keep).logits
        except TypeError:  # a model without logits_to_keep
            logits = model(**kw).logits
    logits = logits[:, -keep:-1].float()  # [B, L - start, V]
    if temperature != 1.0:
        logits = logits / temperature
    logp = torch.log_softmax(logits, -1).gather(-1, input_ids[:, start:, None]).squeeze(-1)
    out[:, start:] = logp.masked_fill(~mask[:, start:], 0.0)
    return out
