"""The reward-shaped pre-training objective (arXiv 2512.22955), its kernels and diagnostics.

Importing this package needs only torch; Triton is imported on the first Triton call.
"""

from .loss import LossStats, fused_linear_reward_shaped_loss, reward_shaped_loss

__all__ = ["LossStats", "fused_linear_reward_shaped_loss", "reward_shaped_loss"]
