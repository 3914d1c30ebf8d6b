"""Rollout actors: a group of Ray actors, each holding one rollout engine, behind one object.

The RL controller (rank 0 of the trainer) owns a RolloutGroup. `generate` splits the
prompts into contiguous chunks, one per actor, and returns the completions in prompt
order; `sync_weights` pushes the policy's full state dict to every actor after each update.
A group either starts its own actors and stops them at `shutdown`, or borrows them from an
apply's RolloutPool (pool.py) and hands them back, so RL and eval pay one engine start.

Weight sync (`rl.rollout.weight_sync`, weight_sync.py): trainer rank 0 streams the weights
bucket by bucket over a process group of its own with the engines (collective; gloo on
CPU, NCCL on GPU; formed when the engines are ready), or puts the full state dict into the
object store once for every actor to load (object_store). Every sync is verified (each
engine's fingerprints against the trainer's) and bounded by `rl.rollout.sync_timeout_s`;
either failure is a WeightSyncError naming the tensor or the actor.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rsrl.rl.rollout.config import RolloutSpec
from rsrl.rl.rollout.contract import Completion, check_complete, checkpoint_state_dict
from rsrl.rl.rollout.engine import make_engine
from rsrl.rl.rollout.fingerprint import Fingerprint, WeightSyncError, check_fingerprints
from rsrl.rl.rollout.pool import ActorConfig, start_actors, stop_actors
from rsrl.rl.rollout.sync_group import GroupAddress, SyncGroup, host_store
from rsrl.rl.rollout.weight_sync import (
    TensorMeta,
    WeightStream,
    collect_on_cpu,
    collective_backend,
    receive_buckets,
    resolve_weight_sync,
    send_buckets,
)

log = logging.getLogger("rsrl")

DEFAULTS = RolloutSpec()


class RolloutWorker:
    """The body of one rollout actor: an engine built inside the actor's own process."""

    def __init__(self, engine_name: str, model_dir: str, tokenizer_dir: str, options: dict):
        self.engine = make_engine(engine_name, model_dir, tokenizer_dir, **options)
        self.sync_group: SyncGroup | None = None

    def set_threads(self, threads: int) -> None:
        """Each borrower says how many torch threads it samples on. Through torch._C: vLLM's
        CPU worker replaces torch.set_num_threads with a no-op guarding the thread binding
        of its multiprocess engine, which the in-process engine (vllm_engine.py) skips."""
        torch._C.set_num_threads(threads)

    def ready(self) -> set[str]:
        """The names a weight update must carry."""
        return self.engine.expected_names

    def generate(self, prompts: list[str], sampling: dict) -> list[list[Completion]]:
        return self.engine.generate(prompts, **sampling)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> dict[str, Fingerprint]:
        return self.engine.load_weights(state_dict)

    def join_sync_group(self, address: GroupAddress, rank: int) -> None:
        import ray

        self.sync_group = SyncGroup(address, rank, ray.util.get_node_ip_address())

    def receive_weights(self, plan: list[list[TensorMeta]]) -> dict[str, Fingerprint]:
        assert self.sync_group is not None, "join_sync_group first"
        return self.engine.load_weights(receive_buckets(self.sync_group, plan))

    def leave_sync_group(self) -> None:
        """Before the next borrower forms its own: its trainer may be gone already."""
        self.sync_group = None

    def shutdown(self) -> None:
        self.engine.shutdown()


@dataclass
class PendingCompletions:
    """Completions the actors are sampling: `result()` waits for them."""

    refs: list[Any]  # one per actor that got prompts
    chunks: list[tuple[int, int]]  # its [lo, hi) of the prompts

    def result(self) -> list[list[Completion]]:
        import ray

        results: list[list[Completion]] = []
        for (lo, _), groups in zip(self.chunks, ray.get(self.refs) if self.refs else []):
            for group in groups:
                for completion in group:
                    completion.prompt_index += lo
                results.append(group)
        return results


class RolloutGroup:
    """The rollout actors of `config` (pool.ActorConfig: engine, model, how many, their
    CPUs and GPUs), spread over the cluster, each on `threads` torch threads (None: one per
    CPU). The weight-sync settings are `rl.rollout`'s (RolloutSpec). With `pool` (a
    RolloutPool actor, pool.py) the actors are borrowed from it and outlive the group; each
    borrower sets its own threads."""

    def __init__(
        self,
        config: ActorConfig,
        *,
        weight_sync: str = DEFAULTS.weight_sync,
        sync_bucket_mb: int = DEFAULTS.sync_bucket_mb,
        sync_timeout_s: float = DEFAULTS.sync_timeout_s,
        pool: Any = None,
        threads: int | None = None,
    ):
        import ray

        if config.actors < 1:
            raise ValueError(f"a rollout group needs at least one actor, got {config.actors}")
        # A pool's running actors may hold another checkpoint's weights (same architecture):
        # `_stale` says they get this group's before their first use.
        self.actors: list[Any]
        if pool is None:
            self.actors, self._stale = start_actors(config), False
        else:
            self.actors, self._stale = ray.get(pool.borrow.remote(config))
        self._pool, self._model_dir = pool, Path(config.model_dir)
        # The engines start in the background (a vLLM actor takes seconds to import and
        # build); the first call waits for them, so a caller can do other work meanwhile.
        self._starting = [a.ready.remote() for a in self.actors]
        for actor in self.actors:  # queued before any of this group's calls: no wait needed
            actor.set_threads.remote(threads or max(1, math.floor(config.cpus_per_actor)))
        self._started_at, self._engine_name = time.perf_counter(), config.engine_name
        self.transport = resolve_weight_sync(weight_sync)
        self.bucket_bytes, self.timeout_s = sync_bucket_mb * 2**20, sync_timeout_s
        self._backend = collective_backend(config.gpus_per_actor)
        self.expected_names: set[str] = set()
        self.sync_group: SyncGroup | None = None

    @classmethod
    def for_spec(
        cls,
        rollout: RolloutSpec,
        model_dir: Path,
        dtype: str,
        *,
        pool: Any = None,
        threads: int | None = None,
    ) -> RolloutGroup:
        """The group `rl.rollout` asks for, sampling from the HF export in `model_dir` in
        `dtype` (RolloutSpec.engine_dtype)."""
        return cls(
            ActorConfig.for_rollout(rollout, model_dir, dtype),
            weight_sync=rollout.weight_sync,
            sync_bucket_mb=rollout.sync_bucket_mb,
            sync_timeout_s=rollout.sync_timeout_s,
            pool=pool,
            threads=threads,
        )

    def _wait_until_ready(self) -> None:
        import ray

        if self._starting:
            self.expected_names = ray.get(self._starting)[0]  # engine errors surface here
            self._starting = []
            log.info(
                "rollout: %d %s actor(s) ready %.1fs after their start",
                len(self.actors),
                self._engine_name,
                time.perf_counter() - self._started_at,
            )
            if self.transport == "collective":
                self.sync_group = self._form_sync_group()
            if self._stale:
                self._stale = False
                self.load_checkpoint(self._model_dir)

    def _form_sync_group(self) -> SyncGroup:
        """This process (rank 0) and every actor (ranks 1..N) in one weight-sync group."""
        import ray

        host = ray.util.get_node_ip_address()
        store = host_store(host, len(self.actors) + 1, self.timeout_s)
        address = GroupAddress(
            host, store.port, len(self.actors) + 1, self._backend, self.timeout_s
        )
        joins = [a.join_sync_group.remote(address, r) for r, a in enumerate(self.actors, 1)]
        try:
            group = SyncGroup(address, 0, host, store)
            ray.get(joins, timeout=self.timeout_s)
        except Exception as e:
            raise WeightSyncError(
                f"the rollout actors could not form the {address.backend} weight-sync group "
                f"with the trainer at {host}:{store.port} within rl.rollout.sync_timeout_s="
                f"{self.timeout_s:g}s ({e}); rl.rollout.weight_sync: object_store avoids it"
            ) from e
        log.info("rollout: weight sync over a %s group of %d", address.backend, len(joins) + 1)
        return group

    def generate(
        self,
        prompts: list[str],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> list[list[Completion]]:
        """`n` completions per prompt, in prompt order, `prompt_index` into `prompts`.

        Actor k gets the k-th contiguous chunk and seed `seed + n * (index of its first
        prompt)`, so with vLLM sample j of prompt i always has seed `seed + n * i + j`.
        """
        sampling = dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        return self.submit(prompts, **sampling, seed=seed).result()

    def submit(self, prompts: list[str], **sampling: Any) -> PendingCompletions:
        """`generate`'s work, started: the actors sample while the caller goes on (RL's
        asynchronous rollouts). An actor runs its calls in order, so a weight sync made
        after this waits until these completions are done: they come from today's weights."""
        if not prompts:
            return PendingCompletions([], [])
        self._wait_until_ready()
        n, seed = sampling["n"], sampling.pop("seed")
        chunks = _contiguous_chunks(len(prompts), len(self.actors))
        refs = [
            actor.generate.remote(prompts[lo:hi], {**sampling, "seed": seed + n * lo})
            for actor, (lo, hi) in zip(self.actors, chunks)
        ]
        return PendingCompletions(refs, chunks)

    def sync_weights(self, weights: Mapping[str, torch.Tensor] | WeightStream) -> float:
        """Load `weights` (a full HF-named state dict, or a stream of its buckets) into every
        actor's engine and check each engine's fingerprints; the wall seconds."""
        self._wait_until_ready()
        stream = (
            weights
            if isinstance(weights, WeightStream)
            else WeightStream.of(weights, self.bucket_bytes)
        )
        check_complete(stream.names, self.expected_names)  # before anything moves
        start = time.perf_counter()
        deadline = time.monotonic() + self.timeout_s
        if self.sync_group is not None:
            reports = self._sync_collective(self.sync_group, stream, deadline)
        else:
            reports = self._sync_object_store(stream, deadline)
        for rank, (sent, report) in enumerate(reports, 1):
            check_fingerprints(sent, report, f"rollout actor {rank} of {len(self.actors)}")
        seconds = time.perf_counter() - start
        log.debug("rollout: weight sync to %d actor(s) took %.3fs", len(self.actors), seconds)
        return seconds

    def _sync_collective(self, group: SyncGroup, stream: WeightStream, deadline: float):
        refs = [actor.receive_weights.remote(stream.plan) for actor in self.actors]
        try:
            sent = send_buckets(group, stream, deadline)
        except Exception as e:
            self._await(refs, min(deadline, time.monotonic() + 5))  # a dead actor names itself
            raise WeightSyncError(f"the weight broadcast to the rollout actors failed: {e}") from e
        return [(sent, report) for report in self._await(refs, deadline)]

    def _sync_object_store(self, stream: WeightStream, deadline: float):
        import ray

        state, sent = collect_on_cpu(stream)
        ref = ray.put(state)
        del state
        refs = [actor.load_weights.remote(ref) for actor in self.actors]
        return [(sent, report) for report in self._await(refs, deadline)]

    def _await(self, refs: list, deadline: float) -> list[dict[str, Fingerprint]]:
        """The actors' fingerprints; a timeout or a dead actor is a WeightSyncError."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        try:
            return ray.get(refs, timeout=max(0.0, deadline - time.monotonic()))
        except GetTimeoutError as e:
            raise WeightSyncError(
                f"the weight sync to {len(self.actors)} rollout actor(s) did not finish within "
                f"rl.rollout.sync_timeout_s={self.timeout_s:g}s"
            ) from e
        except RayActorError as e:
            raise WeightSyncError(f"a rollout actor died during the weight sync: {e}") from e

    def load_checkpoint(self, model_dir: Path) -> float:
        """Serve the weights of another HF export of the same architecture; the wall seconds
        (cheaper than a new group: no engine start)."""
        return self.sync_weights(checkpoint_state_dict(model_dir))

    def shutdown(self) -> None:
        """Stop every engine and actor, or hand borrowed actors back to their pool."""
        import ray

        if self._pool is not None:
            ray.get([a.leave_sync_group.remote() for a in self.actors])
        else:
            stop_actors(self.actors)
        self.actors, self.sync_group = [], None


def _contiguous_chunks(count: int, parts: int) -> list[tuple[int, int]]:
    """[lo, hi) bounds of `parts` near-equal contiguous chunks of range(count); no empty ones."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
