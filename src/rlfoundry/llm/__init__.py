"""Language models as policies over tokens: pre-training -> SFT -> RL alignment.

    tokenizer.py   byte-level BPE with one token per digit, trained locally
    models.py      built-in tiny models, load/save, LoRA, ValueHead, policy_logprobs
    tasks.py       arithmetic / sentiment / format tasks, JSONL import, evaluation
    generation.py  batched KV-cache sampling (completion ids, mask, log-probs)
    pretrain.py    next-token prediction on a task corpus
    sft.py         supervised fine-tuning, loss on completion tokens only
    cli.py         `rlfoundry llm ...`

The RL stages (reward model, PPO, GRPO, RLOO, DPO) build on these; see their modules.
Importing this package imports neither torch nor transformers.
"""
