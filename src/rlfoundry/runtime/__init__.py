"""The runtime every trainer writes through: config, run directory, checkpoints, plots, video."""
