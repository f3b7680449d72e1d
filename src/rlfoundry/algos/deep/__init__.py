"""Deep RL on one Gymnasium env: DQN, VPG, A2C, PPO and the on-policy toolkit they share."""
