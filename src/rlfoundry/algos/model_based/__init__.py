"""Model-based RL: PETS."""
