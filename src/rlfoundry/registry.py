"""Every trainable thing rlfoundry has, in one table: gym algorithms and LLM stages.

A registry line names a module that follows the one contract (docs/CONTRIBUTING.md):
a documented ``Config`` dataclass, ``check(cfg)`` (the input check, before anything is
written) and ``train(cfg, run) -> dict``; gym algorithms also ``load_policy(path, cfg)``.
``rlfoundry list``, the CLI (``rlfoundry train NAME``, ``rlfoundry llm STAGE``), the
Python API (``rlfoundry.api.train(NAME)``) and warm starts (``--init-from``) all read it.

The modules are named by string and imported only when used, so this file (and
``import rlfoundry``, and building the CLI parser) loads no torch and no gymnasium.

LLM stages are named ``llm-STAGE``: the run's config.yaml says which trainer made it, and
``ppo`` is both a gym algorithm and an LLM stage. ``rlfoundry llm STAGE`` drops the prefix.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from rlfoundry.errors import ConfigError

#: Prefix of the registry name of an LLM stage (``llm-grpo`` is ``rlfoundry llm grpo``).
LLM_PREFIX = "llm-"


@dataclass(frozen=True)
class Entry:
    """One trainable module and what the CLI and the run directory need to know about it."""

    name: str
    """Registry name: ``rlfoundry train NAME``, ``rlfoundry list NAME``, config.yaml's ``algo``."""
    module: str
    """Dotted path of the module with ``Config``, ``check`` and ``train``."""
    about: str
    """One line for ``rlfoundry list``."""
    kind: Literal["gym", "llm"]
    """``gym``: trains on a Gymnasium env; ``llm``: a language-model stage."""
    curve: str = "episode_return"
    """The metrics.csv column that learning_curve.png plots against steps."""
    warm_start: bool = False
    """Fresh runs accept ``--init-from DIR`` (they call ``Run.warm_start``)."""
    data_key: str | None = None
    """LLM stages: the Config key that ``--data FILE`` sets (None: no ``--data`` flag)."""
    periodic_eval: bool = False
    """Gym: evaluates periodically and keeps ``best.safetensors`` by default (``eval_every:
    auto``, :mod:`rlfoundry.envs.periodic`); any gym entry does with ``--eval-every N``."""

    @property
    def command(self) -> str:
        """The command that trains it: ``train`` (gym) or ``llm STAGE``."""
        return "train" if self.kind == "gym" else f"llm {self.name.removeprefix(LLM_PREFIX)}"

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


def _gym(
    name: str, module: str, about: str, *, warm_start: bool = False, deep: bool = False
) -> Entry:
    return Entry(name, module, about, "gym", warm_start=warm_start, periodic_eval=deep)


def _llm(stage: str, module: str, about: str, curve: str, data_key: str | None) -> Entry:
    return Entry(LLM_PREFIX + stage, module, about, "llm", curve=curve, data_key=data_key)


# fmt: off
_ENTRIES = (
    _gym("qlearning", "rlfoundry.algos.tabular.qlearning", "tabular Q-learning with a Q-table"),
    _gym("sarsa", "rlfoundry.algos.tabular.sarsa", "tabular SARSA (on-policy TD control)"),
    _gym("expected_sarsa", "rlfoundry.algos.tabular.expected_sarsa", "tabular Expected SARSA"),
    _gym("dyna_q", "rlfoundry.algos.tabular.dyna_q", "Dyna-Q: Q-learning plus planning with a learned model"),
    _gym("ppo", "rlfoundry.algos.deep.ppo", "PPO: clipped-surrogate actor-critic, Discrete or Box actions", warm_start=True, deep=True),
    _gym("a2c", "rlfoundry.algos.deep.a2c", "A2C: synchronous advantage actor-critic (one step per segment)", warm_start=True, deep=True),
    _gym("dqn", "rlfoundry.algos.deep.dqn", "DQN / Double DQN: replay memory and a target network", warm_start=True, deep=True),
    _gym("sac", "rlfoundry.algos.deep.sac", "SAC: soft actor-critic, entropy-regularised, bounded Box actions", warm_start=True, deep=True),
    _gym("td3", "rlfoundry.algos.deep.td3", "TD3: twin delayed DDPG, bounded Box actions", warm_start=True, deep=True),
    _gym("vpg", "rlfoundry.algos.deep.vpg", "VPG / REINFORCE: the basic policy gradient, reward-to-go weighted", deep=True),
    _gym("selfplay_ppo", "rlfoundry.algos.multiagent.selfplay_ppo", "self-play PPO with action masking on PettingZoo games"),
    _gym("mappo", "rlfoundry.algos.multiagent.mappo", "MAPPO / IPPO: parameter-shared PPO for cooperative teams"),
    _gym("rl2", "rlfoundry.algos.meta.rl2", "RL^2: a GRU policy meta-trained by PPO on bandits / MDPs"),
    _gym("pets", "rlfoundry.algos.model_based.pets", "PETS: ensemble dynamics model + CEM planning (model-based)"),
    _llm("pretrain", "rlfoundry.llm.pretrain", "pre-train a causal LM on a task's corpus", "loss", "corpus"),
    _llm("sft", "rlfoundry.llm.sft", "supervised fine-tuning, loss on completion tokens only", "loss", "data"),
    _llm("reward-model", "rlfoundry.llm.reward_model", "train a Bradley-Terry reward model on preference pairs", "eval_accuracy", "data"),
    _llm("dpo", "rlfoundry.llm.dpo", "Direct Preference Optimization against a frozen reference", "eval_reward_margin", "data"),
    _llm("kto", "rlfoundry.llm.kto", "KTO on unpaired desirable/undesirable completions", "eval_reward_gap", "data"),
    _llm("online-dpo", "rlfoundry.llm.online_dpo", "online DPO: pairs sampled from the policy, judged by a reward", "reward", "prompts"),
    _llm("ppo", "rlfoundry.llm.ppo", "token-level PPO with a value network and a KL penalty", "reward", "prompts"),
    _llm("grpo", "rlfoundry.llm.grpo", "GRPO: group-relative advantages, clipped ratio, optional KL", "reward", "prompts"),
    _llm("rloo", "rlfoundry.llm.rloo", "REINFORCE leave-one-out with a KL penalty in the reward", "reward", "prompts"),
)
# fmt: on

#: name -> entry, in the order ``rlfoundry list`` shows them.
REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}


def register(entry: Entry) -> Entry:
    """Add (or replace) an entry at run time: a plugin's algorithm, or a test's."""
    REGISTRY[entry.name] = entry
    return entry


def entries(kind: str | None = None) -> list[Entry]:
    """The entries of ``kind`` (all when None) whose module is importable in this install."""
    return [
        e
        for e in REGISTRY.values()
        if (kind is None or e.kind == kind) and importlib.util.find_spec(e.module) is not None
    ]


def _spelling(name: str) -> str:
    """A name as compared: lower case, without ``-`` and ``_`` (``q-learning``, ``Q_Learning``
    and ``qlearning`` are one name; ``llm-reward-model`` is ``llmrewardmodel``)."""
    return name.lower().replace("-", "").replace("_", "")


def get(name: str | None) -> Entry:
    """The entry called ``name`` (spelt with or without ``-`` and ``_``, any case), or a
    one-sentence ConfigError with the closest names and every valid one."""
    import difflib

    key = _spelling(name or "")
    for entry in REGISTRY.values():
        if _spelling(entry.name) == key and importlib.util.find_spec(entry.module) is not None:
            return entry
    names = [e.name for e in entries()]
    by_spelling = {_spelling(n): n for n in names}
    close = [by_spelling[k] for k in difflib.get_close_matches(key, by_spelling, n=3, cutoff=0.6)]
    if _spelling(LLM_PREFIX) + key in by_spelling:  # `sft` for the LLM stage `llm-sft`
        close.insert(0, by_spelling[_spelling(LLM_PREFIX) + key])
    close = list(dict.fromkeys(close))
    hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise ConfigError(f"Unknown algorithm '{name}'{hint}; choose one of: {', '.join(names)}.")


def load(name: str) -> ModuleType:
    """Import the module of ``name`` (see :func:`get`)."""
    return get(name).load()
