"""A rollout engine by the name `rl.rollout.engine` gives it; the contract is in contract.py."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from rsrl.rl.rollout.config import Engine
from rsrl.rl.rollout.contract import RolloutEngine
from rsrl.rl.rollout.hf_engine import HFEngine
from rsrl.rl.rollout.vllm_engine import VllmEngine


def make_engine(
    name: str, model_dir: str | Path, tokenizer_dir: str | Path, **options
) -> RolloutEngine:
    """The engine called `name` ("vllm" | "hf"); `options` go to its constructor."""
    if name == "vllm":
        return VllmEngine(model_dir, tokenizer_dir, **options)
    if name == "hf":
        return HFEngine(model_dir, tokenizer_dir, **options)
    raise ValueError(
        f"unknown rollout engine '{name}'; expected one of {', '.join(get_args(Engine))}"
    )
