"""How many torch threads the RL trainer runs: a lone CPU trainer shares its rollout actors'
cores (they take turns), several workers or GPUs keep one thread per reserved CPU."""

from pathlib import Path

from rsrl.rl.stage import trainer_threads
from rsrl.spec import load_spec

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"


def test_a_lone_cpu_trainer_takes_its_actors_cores_too():
    assert trainer_threads(load_spec(QUICKSTART)) == 2  # 1 CPU + one 1-CPU vLLM actor
    spec = load_spec(QUICKSTART, ["rl.rollout.actors=3", "resources.cpus_per_worker=2"])
    assert trainer_threads(spec) == 5


def test_several_workers_or_gpus_keep_their_reservation():
    assert trainer_threads(load_spec(QUICKSTART, ["resources.num_workers=2"])) is None
    assert trainer_threads(load_spec(QUICKSTART, ["resources.gpus_per_worker=1"])) is None
