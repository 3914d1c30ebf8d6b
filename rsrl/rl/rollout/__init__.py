"""Rollout engines (vLLM, transformers) behind one contract, Ray actor groups, weight sync."""

from rsrl.rl.rollout.contract import Completion, RolloutEngine
from rsrl.rl.rollout.engine import make_engine

__all__ = ["Completion", "RolloutEngine", "make_engine"]
