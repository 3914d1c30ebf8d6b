"""A process group of its own for weight sync: trainer rank 0 (rank 0 here) and every
rollout engine (ranks 1..N).

torch.distributed's `new_group` can only split the default group, which the rollout actors
are not in, so the group is built directly on a TCPStore hosted by the trainer (as the RL
frameworks do: OpenRLHF and verl through a store-based group, vLLM's
`StatelessProcessGroup`). Gloo on CPU, NCCL on GPU, the same calls. Every operation is
bounded by the group's timeout, so a peer that died or stopped listening raises instead of
hanging.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

STORE_PREFIX = "rsrl-weight-sync"


@dataclass(frozen=True)
class GroupAddress:
    host: str  # the trainer's node IP, reachable from every rollout node
    port: int
    world_size: int  # 1 + the number of rollout actors
    backend: str  # gloo | nccl
    timeout_s: float


def host_store(host: str, world_size: int, timeout_s: float) -> dist.TCPStore:
    """Rank 0's store, on a free port of `host` (its `.port`); the group forms on it."""
    timeout = datetime.timedelta(seconds=timeout_s)
    return dist.TCPStore(host, 0, world_size, True, timeout, wait_for_workers=False)


class SyncGroup:
    """One member of the weight-sync group. Rank 0 passes the store from `host_store`; the
    constructor returns once every rank has joined, or raises at the timeout."""

    def __init__(
        self, address: GroupAddress, rank: int, node_ip: str, store: dist.TCPStore | None = None
    ):
        self.address, self.rank = address, rank
        timeout = datetime.timedelta(seconds=address.timeout_s)
        self.store = store or dist.TCPStore(
            address.host, address.port, address.world_size, False, timeout
        )
        prefixed = dist.PrefixStore(STORE_PREFIX, self.store)
        self.group: Any  # a c10d Backend; torch's stubs leave out its collectives
        if address.backend == "nccl":
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = timeout
            self.group = dist.ProcessGroupNCCL(prefixed, rank, address.world_size, options)
            self.device = torch.device("cuda", torch.cuda.current_device())
        else:
            options = dist.ProcessGroupGloo._Options()  # type: ignore[attr-defined]  # unstubbed
            options._timeout = timeout
            # Bind to the node IP the others reach, not whatever the hostname resolves to.
            options._devices = [dist.ProcessGroupGloo.create_device(hostname=node_ip)]
            self.group = dist.ProcessGroupGloo(prefixed, rank, address.world_size, options)
            self.device = torch.device("cpu")

    def broadcast(self, tensors: list[torch.Tensor]) -> None:
        """Broadcast `tensors` from rank 0 in place, in order; returns when all are done."""
        options = dist.BroadcastOptions()
        options.rootRank = 0
        works = [self.group.broadcast([t], options) for t in tensors]
        for work in works:
            work.wait()
