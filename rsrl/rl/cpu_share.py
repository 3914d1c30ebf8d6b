"""Torch threads of RL's trainer and rollout actors when a lone CPU trainer runs them.

Rank 0 waits while the actors sample and they idle while it updates, so the two phases can
take turns on the same cores instead of each leaving the other's idle: the trainer runs on
its CPUs and its actors', and a lone actor on its CPUs and the trainer's. Several actors
sample at once, so each keeps its own reservation. Several workers or GPUs keep one thread
per reserved CPU (None): their actors may be on other machines.
"""

from __future__ import annotations

import math

from rsrl.spec.schema import Spec, rl_section
from rsrl.train.fit import uses_ray_train


def _lone_cpu_trainer(spec: Spec) -> bool:
    return not uses_ray_train(spec.resources)


def trainer_threads(spec: Spec) -> int | None:
    ro = rl_section(spec).rollout
    if not _lone_cpu_trainer(spec):
        return None
    return max(1, math.floor(spec.resources.cpus_per_worker + ro.actors * ro.cpus_per_actor))


def rollout_threads(spec: Spec) -> int | None:
    """RL's only: eval, which borrows the same actor (pool.py), scores held-out text beside
    it and keeps it to its reservation."""
    ro = rl_section(spec).rollout
    if not _lone_cpu_trainer(spec) or ro.actors > 1 or ro.gpus_per_actor > 0:
        return None
    return max(1, math.floor(spec.resources.cpus_per_worker + ro.cpus_per_actor))
