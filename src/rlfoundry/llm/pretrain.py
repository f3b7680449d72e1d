"""Pre-training: next-token prediction on every token of a text corpus.

    rlfoundry llm pretrain --task arithmetic --out runs/pretrain
    rlfoundry llm pretrain --set corpus=texts.jsonl --model tiny:micro

The first stage of the seed's training flow (pre-training -> SFT -> RL alignment):
the model learns the language of the task (for arithmetic, worked equations
"17+25=42"; for sentiment, reviews of every mood) before it is taught to answer
prompts. The loss is the token-mean NLL of every token after the first, EOS included,
of documents drawn in seeded epochs:

    L = - sum_{i,t>0} log pi(x_it | x_i<t) / #tokens

Each document is its own row starting at position 0, as prompts do at inference
(no packing: the built-in documents are a dozen tokens long). The loop is SFT's,
`supervised.fit`, with the whole document as the target; only the data differs. Held-out loss is
measured on the task's held-out corpus, held-out accuracy by greedy generation on
the task's held-out prompts. Run directory and resume: as `sft`. Device, precision and
checkpointing: `policy.ModelOptions`; LoRA is refused (pre-training trains every weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlfoundry.errors import ConfigError
from rlfoundry.llm.data import encode_examples, load_texts
from rlfoundry.llm.policy import ModelOptions
from rlfoundry.llm.supervised import build_model, check_model_and_task, fit
from rlfoundry.llm.tasks import get_task
from rlfoundry.runtime.run import Run, seed_everything


@dataclass
class Config(ModelOptions):
    model: str = "tiny:nano"
    """Model to train: a built-in size tiny:nano|micro|small[:qwen2|llama] (random
    init from `seed`), or a model/run directory to continue pre-training."""
    task: str = "arithmetic"
    """Built-in task whose corpus is the training text and whose held-out prompts
    measure accuracy; '' = no task (then give corpus)."""
    corpus: str = ""
    """Dataset of documents (column `text`: .jsonl/.json/.csv/.parquet, a save_to_disk
    directory or a hub name) to train on instead of the task's corpus."""
    total_steps: int = 500
    """Optimizer steps."""
    batch_size: int = 64
    """Documents per step over all processes (each of N processes takes batch_size / N)."""
    fsdp: bool = False
    """Shard parameters, gradients and optimizer state over the processes of a launch
    (torch's fully_shard), for models that do not fit one device; needs 2+ processes."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to learning_rate *
    min_lr_ratio)."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of learning_rate."""
    warmup_steps: int = 30
    """Linear learning-rate warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip; 0 disables."""
    max_len: int = 128
    """Tokens per document (longer ones are cut)."""
    eval_every: int = 200
    """Steps between held-out evaluations (0 = only at the end)."""
    eval_size: int = 200
    """Held-out documents for the loss and prompts for accuracy; 0 = none."""
    seed: int = 0
    """Seed of initialisation and data order."""
    torch_threads: int = 1
    """CPU threads for torch."""

    def __post_init__(self) -> None:
        for name in ("total_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if not self.task and not self.corpus:
            raise ConfigError("Nothing to train on: set task or corpus (a JSONL of {text}).")


def documents(cfg: Config) -> tuple[list[str], list[str]]:
    """(train, held-out) documents, checked before training."""
    if cfg.corpus:
        docs = load_texts(cfg.corpus)
        k = max(1, min(cfg.eval_size, len(docs) // 20)) if len(docs) > 1 else 0
        return docs[k:], docs[:k]
    task = get_task(cfg.task)
    return task.corpus("train", None, cfg.seed), task.corpus("test", max(1, cfg.eval_size))


def check(cfg: Config) -> None:
    """Fail before training: model path, task name, device/dtype (no LoRA), corpus fields."""
    check_model_and_task(cfg, lora=False)
    documents(cfg)


def train(cfg: Config, run: Run) -> dict[str, Any]:
    seed_everything(cfg.seed)
    train_docs, held_docs = documents(cfg)
    model, tok, prec = build_model(cfg)
    # a document is a completion of the empty prompt: every token is a target
    rows = encode_examples(tok, [("", d) for d in train_docs], cfg.max_len)
    held = encode_examples(tok, [("", d) for d in held_docs], cfg.max_len)
    return fit(cfg, run, rows, held, model, tok, prec)
