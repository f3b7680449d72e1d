"""Multi-agent RL: self-play PPO on two-player games, MAPPO for cooperative teams."""
