"""Rollout actors: a group of Ray actors, each holding one rollout engine, behind one object.

The RL controller (rank 0 of the trainer) owns a RolloutGroup. `generate` splits the
prompts into contiguous chunks, one per actor, and returns the completions in prompt
order; `sync_weights` pushes the policy's full state dict to every actor after each update.

Weight sync, object-store path (implemented; CPU and small models): the state dict goes
into Ray's object store once (`ray.put`) and every actor loads that one object into its
engine (`load_weights`: vLLM's in-place reload, or `load_state_dict`). Cost: one
serialisation on the trainer, one read per actor node; no disk.

Weight sync on GPUs (designed, not built: this project's CI has no GPU). Same call,
`sync_weights(state_dict)`, with the transport chosen at construction:
- NCCL broadcast (trainer and rollout actors on different GPUs): at start-up the group
  and trainer rank 0 form one NCCL communicator outside torch.distributed's default group
  (vLLM's `StatelessProcessGroup` + `PyNcclCommunicator`, rank 0 = trainer, ranks 1..N =
  one per rollout worker). A sync sends the names, shapes and dtypes over Ray, then
  broadcasts tensor by tensor (bucketed to ~1 GiB) from rank 0; each actor receives into
  fresh CUDA buffers and feeds them straight to `reload_weights(weights_iterator=...)`,
  so no full second copy is ever held. Under ZeRO-3 the trainer gathers one layer's
  parameters at a time (`GatheredParameters`) and broadcasts it before gathering the
  next, bounding trainer memory to one layer.
- CUDA IPC (trainer and rollout engine share a GPU, "colocated"): the trainer exports
  each gathered tensor with `torch.multiprocessing.reductions.reduce_tensor` and sends the
  handles through Ray; the engine rebuilds views of the trainer's memory and reloads from
  them with no copy over PCIe; the trainer keeps the tensors alive until every actor has
  acknowledged.
Both keep the contract: returns the wall seconds of the sync, after which every engine
samples from the new weights (prefix cache reset included).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from rsrl.rl.rollout.contract import Completion, checkpoint_state_dict
from rsrl.rl.rollout.engine import make_engine

log = logging.getLogger("rsrl")

SHUTDOWN_TIMEOUT_S = 60


class RolloutWorker:
    """The body of one rollout actor: an engine built inside the actor's own process."""

    def __init__(self, engine_name: str, model_dir: str, tokenizer_dir: str, options: dict):
        self.engine = make_engine(engine_name, model_dir, tokenizer_dir, **options)

    def ready(self) -> bool:
        return True

    def generate(self, prompts: list[str], sampling: dict) -> list[list[Completion]]:
        return self.engine.generate(prompts, **sampling)

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.engine.load_weights(state_dict)

    def shutdown(self) -> None:
        self.engine.shutdown()


class RolloutGroup:
    """`actors` rollout actors running `engine_name` ("vllm" | "hf") on the HF model in
    `model_dir`, spread over the cluster, each with `cpus_per_actor` CPUs and
    `gpus_per_actor` GPUs. `engine_options` go to the engine's constructor."""

    def __init__(
        self,
        engine_name: str,
        model_dir: Path,
        tokenizer_dir: Path,
        actors: int,
        cpus_per_actor: float,
        gpus_per_actor: float,
        engine_options: dict | None = None,
    ):
        import ray

        if actors < 1:
            raise ValueError(f"a rollout group needs at least one actor, got {actors}")
        actor_cls = ray.remote(RolloutWorker).options(
            num_cpus=cpus_per_actor, num_gpus=gpus_per_actor, scheduling_strategy="SPREAD"
        )
        # ray's stubs type an actor's methods as plain callables (no .remote) and
        # `Actor.options().remote()` as the class
        self.actors: list[Any] = [
            actor_cls.remote(engine_name, str(model_dir), str(tokenizer_dir), engine_options or {})
            for _ in range(actors)
        ]
        # The engines start in the background (a vLLM actor takes seconds to import and
        # build); the first call waits for them, so a caller can do other work meanwhile.
        self._starting = [a.ready.remote() for a in self.actors]
        self._started_at, self._engine_name = time.perf_counter(), engine_name

    def _wait_until_ready(self) -> None:
        import ray

        if self._starting:
            ray.get(self._starting)  # engine errors surface here
            self._starting = []
            log.info(
                "rollout: %d %s actor(s) ready %.1fs after their start",
                len(self.actors),
                self._engine_name,
                time.perf_counter() - self._started_at,
            )

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

        Actor k gets the k-th contiguous chunk and seed `seed + (index of its first
        prompt)`, so with vLLM prompt i always samples with seed `seed + i`.
        """
        import ray

        if not prompts:
            return []
        self._wait_until_ready()
        sampling = dict(n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
        chunks = _contiguous_chunks(len(prompts), len(self.actors))
        refs = [
            actor.generate.remote(prompts[lo:hi], {**sampling, "seed": seed + lo})
            for actor, (lo, hi) in zip(self.actors, chunks)
        ]
        results: list[list[Completion]] = []
        for (lo, _), groups in zip(chunks, ray.get(refs)):
            for group in groups:
                for completion in group:
                    completion.prompt_index += lo
                results.append(group)
        return results

    def sync_weights(self, state_dict: dict[str, torch.Tensor]) -> float:
        """Load `state_dict` (full HF names) into every actor's engine; the wall seconds."""
        import ray

        self._wait_until_ready()
        start = time.perf_counter()
        ref = ray.put({name: t.detach().to("cpu").contiguous() for name, t in state_dict.items()})
        ray.get([actor.load_weights.remote(ref) for actor in self.actors])
        seconds = time.perf_counter() - start
        log.debug("rollout: weight sync to %d actor(s) took %.3fs", len(self.actors), seconds)
        return seconds

    def load_checkpoint(self, model_dir: Path) -> float:
        """Serve the weights of another HF export of the same architecture; the wall seconds
        (cheaper than a new group: no engine start)."""
        return self.sync_weights(checkpoint_state_dict(model_dir))

    def shutdown(self) -> None:
        """Stop every engine (so vLLM leaves nothing in /dev/shm), then the actors."""
        import ray

        try:
            ray.get([a.shutdown.remote() for a in self.actors], timeout=SHUTDOWN_TIMEOUT_S)
        finally:
            for actor in self.actors:
                ray.kill(actor)
            self.actors = []


def _contiguous_chunks(count: int, parts: int) -> list[tuple[int, int]]:
    """[lo, hi) bounds of `parts` near-equal contiguous chunks of range(count); no empty ones."""
    parts = max(1, min(parts, count))
    bounds = [round(i * count / parts) for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))
