"""The gym algorithms, one readable file each, grouped by family.

- ``tabular/``: Q-learning, SARSA, Expected SARSA, Dyna-Q on a Q-table;
- ``deep/``: PPO, A2C, DQN, VPG, and ``nets.py`` for the networks they share;
- ``multiagent/``: self-play PPO, MAPPO; ``meta/``: RL^2; ``model_based/``: PETS.

Every algorithm follows the one contract of ``docs/CONTRIBUTING.md`` (``Config``,
``check(cfg)``, ``train(cfg, run) -> dict``, ``load_policy(path, cfg)``) and has one line in
:mod:`rlfoundry.registry`, which names it for ``rlfoundry train``, ``rlfoundry list`` and the
Python API.
"""
