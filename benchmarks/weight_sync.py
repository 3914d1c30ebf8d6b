"""Weight sync, collective against object store: seconds per sync and peak resident memory.

    python benchmarks/weight_sync.py             # ~25M, 100M and 400M parameters, on CPU
    python benchmarks/weight_sync.py --quick     # ~25M only, one sync
    python benchmarks/weight_sync.py --sizes 1M --actors 1 --repeats 1   # a smoke run

For each size a dense model (vocab 2048, head_dim 64, ffn 3x hidden) is saved once; then
for each transport this process, the trainer, holds the full fp32 weights (as trainer
rank 0 of a one-worker stage does) and syncs them to a fresh group of two transformers
rollout actors (`--actors`). Once the engines are ready (and the group formed),
`--repeats` timed syncs of the same state dict through RolloutGroup.sync_weights,
verified by fingerprints as in the RL loop; the median seconds. Memory is sampled from
/proc every 5 ms in the trainer and in each actor; "peak above" is the peak during the
syncs minus the resident size just before the first (the process's weights, paged in,
its engine and runtime). Targets (issue 18): with collective the trainer's peak above its
model share is at most one bucket (`--bucket-mb`) + 10%; collective no slower than the
object store from 100M parameters up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rollout import build_tokenizer, dense  # noqa: E402

# (hidden, layers): ~1M, ~26M, ~103M, ~407M parameters with the vocabulary.
SHAPES = {"1M": (128, 4), "25M": (512, 8), "100M": (1024, 8), "400M": (2048, 8)}
DEFAULT_SIZES = ["25M", "100M", "400M"]
TRANSPORTS = ("object_store", "collective")
MB = 2**20


class PeakRSS:
    """The highest resident set size of this process since the last `reset`, sampled."""

    def __init__(self, interval_s: float = 0.005):
        self.interval_s, self.peak = interval_s, 0
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def reset(self) -> int:
        self.peak = self.now()
        return self.peak

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.now())
            time.sleep(self.interval_s)


def _actor_reset(worker) -> int:
    """Start sampling in a rollout actor, its engine's weights paged in first."""
    for param in worker.engine.model.parameters():
        float(param.sum())
    worker.peak_rss = PeakRSS()
    return worker.peak_rss.reset()


def _actor_peak(worker) -> int:
    return worker.peak_rss.peak


def measure(model_dir: Path, transport: str, trainer: PeakRSS, args) -> dict:
    """One transport's numbers on the model in `model_dir`."""
    import ray
    import torch
    from transformers import AutoModelForCausalLM

    from rsrl.rl.rollout.actors import RolloutGroup
    from rsrl.rl.rollout.pool import ActorConfig

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    # Resident, as a trainer's weights are (from_pretrained maps the file, paged in lazily).
    state = {name: t.clone() for name, t in model.state_dict().items()}
    del model
    group = RolloutGroup(
        ActorConfig("hf", str(model_dir), str(model_dir), args.actors, 0.5, 0),
        weight_sync=transport,
        sync_bucket_mb=args.bucket_mb,
    )
    try:
        # Engines ready and the group formed, no sync yet: the first sync's allocations count.
        group.generate(["1"], n=1, temperature=0.0, top_p=1.0, max_new_tokens=1, seed=0)
        base = trainer.reset()
        actor_base = ray.get([a.__ray_call__.remote(_actor_reset) for a in group.actors])
        seconds = [group.sync_weights(state) for _ in range(args.repeats)]
        actor_peaks = ray.get([a.__ray_call__.remote(_actor_peak) for a in group.actors])
    finally:
        group.shutdown()
    return {
        "seconds": statistics.median(seconds),
        "trainer_rss_mb": base / MB,
        "trainer_above_mb": (trainer.peak - base) / MB,
        "actor_above_mb": [(p - b) / MB for p, b in zip(actor_peaks, actor_base)],
    }


def save_model(hidden: int, layers: int, tokenizer, out: Path) -> float:
    from rsrl.models.build import build_model
    from rsrl.models.tokenizer import special_token_ids

    model = build_model(
        dense(hidden, layers),
        rope_theta=10000,
        max_seq_len=512,
        seed=0,
        **special_token_ids(tokenizer),
    )
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return sum(p.numel() for p in model.parameters()) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bucket-mb", type=int, default=512)
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SHAPES),
        help=f"model sizes (default: {' '.join(DEFAULT_SIZES)}; 25M with --quick)",
    )
    parser.add_argument(
        "--one", nargs=2, metavar=("MODEL_DIR", "TRANSPORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    trainer = PeakRSS()
    sizes = args.sizes or (["25M"] if args.quick else DEFAULT_SIZES)
    shapes = {size: SHAPES[size] for size in sizes}
    if args.quick:
        args.repeats = 1
    print(
        f"## Weight sync ({args.actors} transformers actors, fp32, bucket {args.bucket_mb} MB, "
        f"median of {args.repeats}; load {os.getloadavg()[0]:.1f})"
    )
    print(
        "| params | transport | s / sync | collective / object store | trainer RSS MB "
        "| trainer peak above it MB | actors' peak above their RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="rsrl-bench-sync-") as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "tokenizer")
        for label, (hidden, layers) in shapes.items():
            model_dir = Path(tmp) / label
            millions = save_model(hidden, layers, tokenizer, model_dir)
            rows = {t: measure(model_dir, t, trainer, args) for t in TRANSPORTS}
            ratio = rows["collective"]["seconds"] / rows["object_store"]["seconds"]
            for transport, r in rows.items():
                actors = ", ".join(f"{a:.0f}" for a in r["actor_above_mb"])
                print(
                    f"| {millions:.0f}M | {transport} | {r['seconds']:.2f} | "
                    f"{ratio:.2f} | {r['trainer_rss_mb']:.0f} | "
                    f"{r['trainer_above_mb']:.0f} | {actors} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
