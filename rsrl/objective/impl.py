"""The implementations of the loss behind one tuple, and the choice between them by device.

An `Impl` reduces logits to `shaping.RowSums` and builds dL/dz from them; `loss` (logits in)
and `fused_linear` (hidden states in) both run whichever one `select_impl` returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import reference
from .shaping import Shaping


class Impl(NamedTuple):
    """One implementation: row sums, and the gradient built from them.

    gradient(state, terms, shaping, row_scale, overwrite_logits=False): with
    overwrite_logits the caller owns the logits and the gradient may be written over them.
    """

    row_sums: Callable[[Tensor, Tensor, Shaping, bool], tuple[Any, Any]]
    gradient: Callable[..., Tensor]
    grad_in_forward: bool


REFERENCE = Impl(reference.row_sums, reference.gradient, reference.GRAD_IN_FORWARD)


def select_impl(impl: str, device: torch.device) -> Impl:
    """`impl` ("auto" | "reference" | "triton") for tensors on `device`; auto: Triton on CUDA."""
    if impl == "auto":
        impl = "triton" if device.type == "cuda" else "reference"
    if impl == "reference":
        return REFERENCE
    if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            f"impl='triton' on {device.type} tensors needs the Triton interpreter: set "
            "TRITON_INTERPRET=1 before anything imports triton, or use impl='reference'"
        )
    from . import kernels  # imports triton: only on this path

    kernels.check_device(device)
    return Impl(kernels.row_sums, kernels.gradient, kernels.GRAD_IN_FORWARD)
