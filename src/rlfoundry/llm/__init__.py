"""Language models as policies over tokens: pre-training -> SFT -> RL alignment.

The stages (each a `Config`, a `check(cfg)` and a `train(cfg, run) -> dict`):

    pretrain.py      next-token prediction on a task corpus
    sft.py           supervised fine-tuning, loss on completion tokens only
    reward_model.py  Bradley-Terry reward model on preference pairs
    dpo.py           Direct Preference Optimization against a frozen reference
    ppo.py           token-level PPO with a value network and a KL penalty
    grpo.py          GRPO: group-relative advantages, clipped ratio, optional KL
    rloo.py          REINFORCE leave-one-out, KL penalty in the reward
    pipeline.py      pretrain -> sft -> grpo on a built-in task

What they share (no stage imports another stage):

    tokenizer.py   byte-level BPE with one token per digit, trained locally
    models.py      built-in tiny models, load/save, ValueHead, policy_logprobs
    policy.py      the device/dtype/LoRA fields of every Config and the one model builder
    precision.py   device choice, autocast, float16 loss scaling, the sampling generator
    lora.py        LoRA targets by name, wrapping, the adapters-off reference, merging
    tasks.py       the `Task` protocol and the built-in tasks (arithmetic, sentiment, format)
    datasets.py    files (JSONL, JSON, CSV, Parquet), save_to_disk dirs, hub names; column formats
    chat_format.py messages to text: the chat template, or plain text without one
    data.py        examples and pairs from datasets, tokenising with a completion mask, batches
    generation.py  batched KV-cache sampling (completion ids, mask, log-probs)
    evaluation.py  held-out greedy accuracy on a task; mean reward / accuracy on any prompts
    rollout.py     RL rollouts (G samples per prompt) and their log-probs
    prompts.py     an RL stage's prompts (and their extra columns), budget and input check
    rewards.py     reward specs (task, verifier, function, reward model, judge) and their sum
    reward_base.py the reward-source contract: dataset columns as arguments, the score check
    verifiers.py   numeric_match, exact_match: completions against an `answer` column
    judges.py      reward model and LLM-judge sources
    scoring.py     the scalar reward model that reward_model.py trains
    chat.py        the one OpenAI-compatible HTTP client (judge, trading reviewer)
    checkpoint.py  training state for exact resume, the final model
    supervised.py  the loop of pretrain and sft
    group_pg.py    the loop of grpo and rloo

Their run directories are opened and written by `rlfoundry.runtime.rundir`, their names
(`llm-sft`, ...) are in `rlfoundry.registry`.

Importing this package imports neither torch nor transformers.
"""
