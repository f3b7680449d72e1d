"""The algorithms reachable from ``rlfoundry train ALGO``.

Each entry is a module with the same four names (see ``docs/CONTRIBUTING.md``):

- ``Config``: a dataclass with a docstring under every field, including ``env_id``,
  ``total_steps``, ``seed`` and ``eval_episodes``;
- ``check_env(env)``: raise :class:`rlfoundry.errors.EnvError` if the algorithm cannot
  handle the env's spaces;
- ``train(cfg, run)``: the training loop, writing to a :class:`rlfoundry.runtime.run.Run` and
  resuming from its checkpoint when there is one;
- ``load_policy(path, cfg)``: a deterministic ``policy(obs) -> action`` from the run's
  checkpoint, used by ``rlfoundry eval``.

Optionally ``extra_eval(path, cfg, policy) -> dict`` adds fields to ``summary.json``.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from rlfoundry.errors import ConfigError

#: name -> (module, one-line description)
ALGOS: dict[str, tuple[str, str]] = {
    "qlearning": ("rlfoundry.algos.tabular.qlearning", "tabular Q-learning with a Q-table (seed 001)"),
    "sarsa": ("rlfoundry.algos.tabular.sarsa", "tabular SARSA (on-policy TD control)"),
    "expected_sarsa": ("rlfoundry.algos.tabular.expected_sarsa", "tabular Expected SARSA"),
    "dyna_q": ("rlfoundry.algos.tabular.dyna_q", "Dyna-Q: Q-learning plus planning with a learned model"),
    "dqn": ("rlfoundry.algos.deep.dqn", "DQN / Double DQN: replay memory and a target network"),
    "vpg": ("rlfoundry.algos.deep.vpg", "VPG / REINFORCE: the policy gradient of seed 003"),
    "ppo": ("rlfoundry.algos.deep.ppo", "PPO: clipped-surrogate actor-critic, Discrete or Box actions"),
    "a2c": ("rlfoundry.algos.deep.a2c", "A2C: synchronous advantage actor-critic (one step per segment)"),
    "selfplay_ppo": ("rlfoundry.algos.multiagent.selfplay_ppo", "self-play PPO with action masking on PettingZoo games"),
    "mappo": ("rlfoundry.algos.multiagent.mappo", "MAPPO / IPPO: parameter-shared PPO for cooperative teams"),
    "rl2": ("rlfoundry.algos.meta.rl2", "RL^2: a GRU policy meta-trained by PPO on bandits / MDPs"),
    "pets": ("rlfoundry.algos.model_based.pets", "PETS: ensemble dynamics model + CEM planning (model-based)"),
}


def available() -> list[str]:
    """Names of the algorithms whose module is importable in this install."""
    out = []
    for name, (module, _) in ALGOS.items():
        if importlib.util.find_spec(module) is not None:
            out.append(name)
    return out


def get_algo(name: str) -> ModuleType:
    """Import the module of algorithm ``name`` or raise a ConfigError listing the valid ones."""
    key = name.lower().replace("-", "_")
    if key not in ALGOS or importlib.util.find_spec(ALGOS[key][0]) is None:
        raise ConfigError(
            f"Unknown algorithm '{name}'; choose one of: {', '.join(available())}."
        )
    return importlib.import_module(ALGOS[key][0])
