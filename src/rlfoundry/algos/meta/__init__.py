"""Meta-RL: RL^2."""
