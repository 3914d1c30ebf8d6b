"""One set of rollout actors for a whole apply: RL samples with them, then eval reuses them.

Starting a vLLM actor is slow (importing vLLM is most of it; benchmarks/RESULTS.md has the
numbers), and RL and eval would otherwise each pay it. The pool is a Ray actor made by the apply's
driver: the rollout actors it starts are its own, so they outlive the stage that first
asked for them and die with the driver, however it ends. A stage borrows actors for its
ActorConfig: the running ones when they can serve it (same engine, tokenizer, resources,
options and model architecture; the borrower then loads its own checkpoint into them),
else new ones in place of the old. The rl stage has its actors started (`prepare`) before
its trainer worker, which borrows them once its own engine is built: the two start side
by side.

Torch-free at import, like the rest of the driver.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsrl.rl.rollout.config import RolloutSpec

log = logging.getLogger("rsrl")
SHUTDOWN_TIMEOUT_S = 60


@dataclass(frozen=True)
class ActorConfig:
    """What a group's actors run and reserve."""

    engine_name: str  # vllm | hf
    model_dir: str
    tokenizer_dir: str
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    engine_options: dict = field(default_factory=dict)  # the engine's constructor's

    @classmethod
    def for_rollout(cls, rollout: RolloutSpec, model_dir: Path, dtype: str) -> ActorConfig:
        """`rollout`'s actors on the HF export in `model_dir`, which carries its tokenizer
        (so RL's and eval's actors load both from one directory and can be shared)."""
        return cls(
            rollout.engine,
            str(model_dir),
            str(model_dir),
            rollout.actors,
            rollout.cpus_per_actor,
            rollout.gpus_per_actor,
            {"dtype": dtype},
        )

    def shares_actors_with(self, other: ActorConfig) -> bool:
        """Equal but for the model's weights: one engine serves both."""
        mine = dataclasses.replace(self, model_dir=other.model_dir)
        return mine == other and same_architecture(Path(self.model_dir), Path(other.model_dir))


class RolloutPool:
    def __init__(self) -> None:
        self.config: ActorConfig | None = None
        self.actors: list[Any] = []

    def borrow(self, config: ActorConfig) -> tuple[list[Any], bool]:
        """Actors for `config`, and whether they hold another checkpoint's weights."""
        if self.config is not None and self.config.shares_actors_with(config) and self._alive():
            log.info("rollout: reusing %d running %s actor(s)", config.actors, config.engine_name)
            return self.actors, True
        self.shutdown()
        self.config, self.actors = config, start_actors(config)
        return self.actors, False

    def prepare(self, config: ActorConfig) -> None:
        """Start actors for `config` unless running ones can serve it, without waiting for
        their engines: its borrower, which comes later, finds them loading."""
        if self.config is None or not self.config.shares_actors_with(config):
            self.shutdown()
            self.config, self.actors = config, start_actors(config)

    def _alive(self) -> bool:
        """Every actor answers (an engine still starting is waited for)."""
        import ray
        from ray.exceptions import RayActorError

        try:
            ray.get([a.ready.remote() for a in self.actors])
        except RayActorError:
            return False
        return True

    def shutdown(self) -> None:
        if self.actors:
            stop_actors(self.actors)
        self.config, self.actors = None, []


def start_pool() -> Any:
    """A RolloutPool actor owned by the caller; it reserves nothing itself."""
    import ray

    # "DEFAULT": outside any placement group of the caller's (a Tune trial's).
    return ray.remote(RolloutPool).options(num_cpus=0, scheduling_strategy="DEFAULT").remote()


def stop_pool(pool: Any) -> None:
    import ray

    try:
        ray.get(pool.shutdown.remote())
    finally:
        ray.kill(pool)


def start_actors(config: ActorConfig) -> list[Any]:
    """`config.actors` rollout actors, spread over the cluster; their engines load meanwhile."""
    import ray

    from rsrl.rl.rollout.actors import RolloutWorker

    actor_cls = ray.remote(RolloutWorker).options(
        num_cpus=config.cpus_per_actor,
        num_gpus=config.gpus_per_actor,
        scheduling_strategy="SPREAD",
    )
    return [
        actor_cls.remote(
            config.engine_name, config.model_dir, config.tokenizer_dir, config.engine_options
        )
        for _ in range(config.actors)
    ]


def stop_actors(actors: list[Any]) -> None:
    """Stop every engine (so vLLM leaves nothing in /dev/shm), then the actors."""
    import ray

    stopping = [a.shutdown.remote() for a in actors]
    try:  # wait, not get: an actor that died (the error already raised) stops nothing
        ray.wait(stopping, num_returns=len(stopping), timeout=SHUTDOWN_TIMEOUT_S)
    finally:
        for actor in actors:
            ray.kill(actor)


def same_architecture(a: Path, b: Path) -> bool:
    """True when two HF exports differ at most in their weights (one engine serves both)."""
    return json.loads((a / "config.json").read_text()) == json.loads(
        (b / "config.json").read_text()
    )
