"""robo_rl: sample-efficient off-policy RL for robots."""
__version__ = "0.1.0"
