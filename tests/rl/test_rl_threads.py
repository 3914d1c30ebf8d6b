"""How many torch threads RL's trainer and rollout actors run: a lone CPU trainer and its
lone actor share their cores (they take turns), several actors, workers or GPUs, and
asynchronous rollouts (trainer and actor at once) keep one thread per reserved CPU
(rsrl.runtime)."""

from pathlib import Path

from rsrl import runtime
from rsrl.spec import Spec, load_spec

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"


def trainer_threads(spec: Spec) -> int | None:
    assert spec.rl is not None
    return runtime.trainer_threads(spec.resources, spec.rl)


def rollout_threads(spec: Spec) -> int | None:
    assert spec.rl is not None
    return runtime.rollout_threads(spec.resources, spec.rl)


def test_a_lone_cpu_trainer_takes_its_actors_cores_too():
    assert trainer_threads(load_spec(QUICKSTART)) == 2  # 1 CPU + one 1-CPU vLLM actor
    spec = load_spec(QUICKSTART, ["rl.rollout.actors=3", "resources.cpus_per_worker=2"])
    assert trainer_threads(spec) == 5


def test_a_lone_actor_takes_the_trainers_cores_too():
    assert rollout_threads(load_spec(QUICKSTART)) == 2  # its 1 CPU + the trainer's 1
    assert rollout_threads(load_spec(QUICKSTART, ["rl.rollout.cpus_per_actor=3"])) == 4
    # several actors sample at the same time: each keeps its own CPUs
    assert rollout_threads(load_spec(QUICKSTART, ["rl.rollout.actors=2"])) is None


def test_several_workers_or_gpus_keep_their_reservation():
    for override in ("resources.num_workers=2", "resources.gpus_per_worker=1"):
        spec = load_spec(QUICKSTART, [override])
        assert trainer_threads(spec) is None and rollout_threads(spec) is None


def test_asynchronous_rollouts_keep_their_reservation():
    # the actor samples ahead while the trainer updates: shared cores would be oversubscribed
    spec = load_spec(QUICKSTART, ["rl.max_staleness=1"])
    assert trainer_threads(spec) is None and rollout_threads(spec) is None
