"""Verifiers score a completion against an item's answer. Third parties add their own as plugins."""

from rsrl.verifiers.registry import (
    VerifyResult,
    available_verifiers,
    load_verifier,
    register_verifier,
)
from rsrl.verifiers.score import score

__all__ = ["VerifyResult", "available_verifiers", "load_verifier", "register_verifier", "score"]
