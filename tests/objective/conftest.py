"""Objective tests: the Triton interpreter runs the kernels on CPU when there is no GPU."""

import os

import torch

# Before anything imports triton: the interpreter is chosen when a kernel is decorated.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402  (after the interpreter switch above)


@pytest.fixture
def small_tiles(monkeypatch):
    """Triton blocks of 32 and groups of 8 logits: small rows still take several streaming
    chunks, and both selection levels (k <= #groups and k > #groups)."""
    from rsrl.objective import kernels

    monkeypatch.setattr(kernels, "MAX_BLOCK", 32)
    monkeypatch.setattr(kernels, "GROUP", 8)
