"""rsrl: reward-shaped pre-training followed by RL with verifiable rewards."""

__version__ = "0.1.0"
