"""Tabular learners with a Q-table: Q-learning, SARSA, Expected SARSA, Dyna-Q."""
