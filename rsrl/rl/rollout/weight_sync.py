"""What one weight sync moves, and the two ways it moves (`rl.rollout.weight_sync`).

A sync is a `WeightStream`: its plan (names, shapes and dtypes, cut into buckets of about
`rl.rollout.sync_bucket_mb`) is known before any tensor is materialised, then its buckets
arrive one at a time (under ZeRO-3 each is gathered only when its turn comes).

- collective: the plan goes to every engine over Ray; trainer rank 0 then broadcasts the
  buckets over the weight-sync group (sync_group.py) and each engine feeds every bucket
  straight into its reload as it arrives. No process holds more than one bucket beyond
  its own weights.
- object_store: the trainer collects the whole state dict on the CPU, `ray.put`s it once,
  and every engine loads that one object. Simple; the trainer holds a full copy.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import get_args

import torch
import torch.distributed as dist

from rsrl.rl.rollout.config import WeightSync
from rsrl.rl.rollout.fingerprint import Fingerprint, WeightSyncError, fingerprint
from rsrl.rl.rollout.sync_group import SyncGroup

Bucket = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TensorMeta:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


@dataclass
class WeightStream:
    plan: list[list[TensorMeta]]  # buckets, in the order `buckets` yields them
    buckets: Iterable[Bucket]  # each bucket's tensors by name, valid until the next one

    @property
    def names(self) -> list[str]:
        return [meta.name for bucket in self.plan for meta in bucket]

    @classmethod
    def of(cls, state_dict: Mapping[str, torch.Tensor], bucket_bytes: int) -> WeightStream:
        """A stream over a state dict already in memory."""
        metas = [TensorMeta(name, tuple(t.shape), t.dtype) for name, t in state_dict.items()]
        plan = plan_buckets(metas, bucket_bytes)
        return cls(plan, ({meta.name: state_dict[meta.name] for meta in b} for b in plan))


def plan_buckets(metas: list[TensorMeta], bucket_bytes: int) -> list[list[TensorMeta]]:
    """`metas` in order, cut into runs of at most `bucket_bytes` (a larger tensor alone)."""
    buckets: list[list[TensorMeta]] = []
    size = bucket_bytes
    for meta in metas:
        if size + meta.nbytes > bucket_bytes:
            buckets.append([])
            size = 0
        buckets[-1].append(meta)
        size += meta.nbytes
    return buckets


def resolve_weight_sync(mode: str) -> str:
    """`rl.rollout.weight_sync` resolved to collective or object_store; auto is collective
    wherever torch.distributed can build the group."""
    if mode not in get_args(WeightSync):
        allowed = ", ".join(get_args(WeightSync))
        raise ValueError(f"unknown weight sync '{mode}'; expected one of {allowed}")
    if mode != "auto":
        return mode
    return "collective" if dist.is_available() and dist.is_gloo_available() else "object_store"


def collective_backend(gpus_per_actor: float) -> str:
    """NCCL when the engines and this process have GPUs, gloo otherwise."""
    on_gpus = gpus_per_actor > 0 and torch.cuda.is_available() and dist.is_nccl_available()
    return "nccl" if on_gpus else "gloo"


def send_buckets(group: SyncGroup, stream: WeightStream, deadline: float) -> dict[str, Fingerprint]:
    """Rank 0: broadcast every bucket of `stream` in plan order; the fingerprints sent."""
    sent: dict[str, Fingerprint] = {}
    # strict: exhausts `buckets`, so a gathering generator leaves its last bucket's context
    for metas, bucket in zip(stream.plan, stream.buckets, strict=True):
        tensors = [bucket[meta.name].detach().to(group.device).contiguous() for meta in metas]
        sent.update((meta.name, fingerprint(t)) for meta, t in zip(metas, tensors))
        group.broadcast(tensors)
        if time.monotonic() > deadline:
            raise WeightSyncError("the weight sync ran past rl.rollout.sync_timeout_s")
    return sent


def receive_buckets(
    group: SyncGroup, plan: list[list[TensorMeta]]
) -> Iterator[tuple[str, torch.Tensor]]:
    """An engine: (name, tensor) pairs as each bucket of `plan` arrives from rank 0."""
    for metas in plan:
        tensors = [torch.empty(m.shape, dtype=m.dtype, device=group.device) for m in metas]
        group.broadcast(tensors)
        yield from zip((m.name for m in metas), tensors)
        del tensors  # before the next bucket is allocated


def collect_on_cpu(stream: WeightStream) -> tuple[Bucket, dict[str, Fingerprint]]:
    """The object-store path's full CPU state dict and its fingerprints."""
    state: Bucket = {}
    for bucket in stream.buckets:
        for name, tensor in bucket.items():
            state[name] = tensor.detach().to("cpu", copy=True)
    return state, {name: fingerprint(t) for name, t in state.items()}
