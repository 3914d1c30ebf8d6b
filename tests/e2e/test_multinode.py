"""`rsrl apply --address` on an existing two-node Ray cluster: each node has one CPU, so
the RL stage's trainer worker and its rollout actor can only run on different nodes."""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
REPO = HERE.parents[1]
TINY = [
    "tokenizer.vocab_size=512",
    "model.vocab_size=512",
    "stages.midtrain=null",
    "eval=null",
    "stages.pretrain.tokens=8192",
    "stages.pretrain.seq_len=64",
    "stages.pretrain.batch_tokens=1024",
    "rl.steps=1",
    "rl.prompts_per_step=2",
    "rl.group_size=2",
    "rl.rollout.max_new_tokens=16",
    "rl.dynamic_sampling=false",
    "rl.eval_every=0",  # no eval suites here, so no RL curve
    "stages.pretrain.cpus_per_worker=1",
]  # a node has one CPU


def test_apply_on_a_two_node_cluster_places_work_on_both(tmp_path):
    cluster = subprocess.Popen(
        [sys.executable, str(HERE / "two_node_cluster.py")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        address = cluster.stdout.readline().strip()
        assert address, "the cluster did not start"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "rsrl.cli",
                "apply",
                str(REPO / "specs" / "quickstart.yaml"),
                f"workdir={tmp_path}",
                *TINY,
                "--address",
                address,
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        assert (next(tmp_path.glob("rl-*")) / "hf" / "config.json").exists()
        cluster.stdin.write("done\n")
        cluster.stdin.flush()
        placed = json.loads(cluster.stdout.readline())
    finally:
        cluster.stdin.close()
        cluster.wait(timeout=120)
    # One CPU worker: a SoloTrainWorker actor; several: Ray Train's RayTrainWorker.
    trainer_nodes = {
        n for name, nodes in placed.items() if name.endswith("TrainWorker") for n in nodes
    }
    rollout_nodes = set(placed["RolloutWorker"])
    assert len(trainer_nodes | rollout_nodes) == 2, placed
