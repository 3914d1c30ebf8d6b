"""Objective tests: the Triton interpreter runs the kernels on CPU when there is no GPU."""

import os

import torch

# Before anything imports triton: the interpreter is chosen when a kernel is decorated.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
