"""Rollout engines head to head, and weight-sync seconds against model size.

    python benchmarks/rollout.py            # CPU: 2 engines on tiny-dense, sync sweep
    python benchmarks/rollout.py --quick    # fewer prompts, smaller sweep
    python benchmarks/rollout.py --prompts 1 --n 2 --max-new-tokens 8 --repeats 1 \
        --train-steps 0 --sync-shapes 1      # a smoke run: every path once, smallest sizes
    python benchmarks/rollout.py --gpus-per-actor 1 --dtype bfloat16   # on a GPU machine

Throughput: the same HF model directory (the `tiny-dense` preset, vocab 2048), the same
synth://rl-arith prompts rendered with the prompt template, the same sampling (n,
temperature 1, top_p 1, max_new_tokens) and seed, each engine in one Ray rollout actor
with the same CPUs (`--cpus-per-actor`, so the same thread count: Ray sets
OMP_NUM_THREADS from it), reached through RolloutGroup as the RL loop reaches it. One
warm-up call, then the median over --repeats of generated tokens / wall seconds; the two
engines take turns within each repeat so that load from other processes falls on both.
The ratio vLLM / transformers is the number to watch (target >= 3 on CPU).

The model is first taught to answer (`--train-steps` of plain next-token training on
worked rl-arith examples ending in EOS), so completions end at EOS after ~15 tokens, as
an RL policy's do; random weights never stop and so never exercise what separates the
engines (transformers keeps decoding finished rows until the longest is done; vLLM's
continuous batching drops them). `--train-steps 0` measures random weights.

Weight sync: RolloutGroup.sync_weights (ray.put of the full state dict, then the engine's
load_weights in the actor) for dense models of growing size, median over --repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsrl.data.synth import generate as synth_records  # noqa: E402
from rsrl.models.build import build_model  # noqa: E402
from rsrl.models.config import ModelSpec  # noqa: E402
from rsrl.models.tokenizer import render_prompt, special_token_ids, train_bpe  # noqa: E402

VOCAB = 2048
ENGINES = ("vllm", "hf")
# (hidden, layers) of the dense models in the sync sweep; head_dim 64, ffn 3x hidden.
SYNC_SHAPES = [(128, 4), (256, 4), (512, 8), (1024, 8)]


def build_tokenizer(out: Path):
    texts = [f"{r['prompt']} {r['solution']}" for r in synth_records("rl-arith")[:5000]]
    tokenizer = train_bpe(texts, VOCAB)
    tokenizer.save_pretrained(str(out))
    return tokenizer


def save_model(spec: ModelSpec, tokenizer, out: Path, train_steps: int = 0) -> int:
    model = build_model(
        spec, rope_theta=10000, max_seq_len=512, seed=0, **special_token_ids(tokenizer)
    )
    teach_to_answer(model, tokenizer, train_steps)
    model.save_pretrained(str(out))
    return sum(p.numel() for p in model.parameters())


def teach_to_answer(model, tokenizer, steps: int, batch_size: int = 32) -> None:
    """Plain next-token training on rendered prompt + worked solution + EOS."""
    import random

    import torch

    docs = [
        f"{render_prompt(tokenizer, r['prompt'])} {r['solution']}{tokenizer.eos_token}"
        for r in synth_records("rl-arith")
    ]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rng = random.Random(0)
    for _ in range(steps):
        batch = tokenizer(rng.sample(docs, batch_size), padding=True, return_tensors="pt")
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def dense(hidden: int, layers: int) -> ModelSpec:
    return ModelSpec(
        arch="dense",
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=max(1, hidden // 64),
        num_kv_heads=max(1, hidden // 128),
        head_dim=64,
        ffn_size=3 * hidden,
        tie_embeddings=True,
    )


def start_group(engine: str, model_dir: Path, tokenizer_dir: Path, args):
    from rsrl.rl.rollout.actors import RolloutGroup
    from rsrl.rl.rollout.pool import ActorConfig

    options = {"dtype": args.dtype} if engine == "vllm" else {}
    cpus, gpus = args.cpus_per_actor, args.gpus_per_actor
    return RolloutGroup(
        ActorConfig(engine, str(model_dir), str(tokenizer_dir), 1, cpus, gpus, options)
    )


def generated(group, prompts: list[str], args) -> tuple[int, float]:
    """(tokens generated, wall seconds) of one generate call."""
    start = time.perf_counter()
    results = group.generate(
        prompts, n=args.n, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0
    )
    return sum(len(c.token_ids) for g in results for c in g), time.perf_counter() - start


def throughput(groups: dict, prompts: list[str], args) -> tuple[dict, float]:
    """Median tokens/s per engine, and the mean completion length (vLLM's samples)."""
    for group in groups.values():
        generated(group, prompts, args)  # warm-up
    rates = {e: [] for e in groups}
    for _ in range(args.repeats):
        for engine, group in groups.items():
            tokens, seconds = generated(group, prompts, args)
            rates[engine].append(tokens / seconds)
            if engine == "vllm":
                mean_length = tokens / (len(prompts) * args.n)
    return {e: statistics.median(r) for e, r in rates.items()}, mean_length


def sync_seconds(engine: str, model_dir: Path, tokenizer_dir: Path, args) -> float:
    from transformers import AutoModelForCausalLM

    state = AutoModelForCausalLM.from_pretrained(str(model_dir)).state_dict()
    group = start_group(engine, model_dir, tokenizer_dir, args)
    try:
        group.sync_weights(state)  # warm-up
        return statistics.median(group.sync_weights(state) for _ in range(args.repeats))
    finally:
        group.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--prompts",
        type=int,
        nargs="+",
        default=[8, 32],
        help="prompt counts to measure (each with n completions)",
    )
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--n", type=int, default=8, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--gpus-per-actor", type=float, default=0.0)
    parser.add_argument("--dtype", default="float32", help="vLLM dtype (transformers: fp32)")
    parser.add_argument(
        "--sync-shapes",
        type=int,
        help=f"how many of the sync sweep's {len(SYNC_SHAPES)} model sizes, smallest first "
        "(default: all; 2 with --quick)",
    )
    args = parser.parse_args()
    if args.sync_shapes is None:
        args.sync_shapes = 2 if args.quick else len(SYNC_SHAPES)
    shapes = SYNC_SHAPES[: args.sync_shapes]
    if args.quick:
        args.prompts, args.repeats, args.train_steps = [8], 1, 30

    import ray

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ray.init(
        address="local",
        num_cpus=max(2, os.cpu_count() or 2),
        include_dashboard=False,
        log_to_driver=False,
    )
    with tempfile.TemporaryDirectory(prefix="rsrl-bench-rollout-") as tmp:
        root = Path(tmp)
        tokenizer = build_tokenizer(root / "tokenizer")
        records = synth_records("rl-arith")
        params = save_model(
            ModelSpec(preset="tiny-dense", vocab_size=VOCAB),
            tokenizer,
            root / "tiny-dense",
            args.train_steps,
        )
        print(
            f"## Rollout throughput (tiny-dense {params / 1e6:.2f}M params, "
            f"{args.train_steps} training steps; n={args.n}, <= {args.max_new_tokens} new "
            f"tokens; {args.cpus_per_actor:g} CPU/actor)"
        )
        print("| prompts x n | mean length | vllm tok/s | hf tok/s | vllm / hf | load avg |")
        print("|---|---|---|---|---|---|")
        groups = {e: start_group(e, root / "tiny-dense", root / "tokenizer", args) for e in ENGINES}
        try:
            for count in args.prompts:
                prompts = [render_prompt(tokenizer, r["prompt"]) for r in records[:count]]
                rates, length = throughput(groups, prompts, args)
                print(
                    f"| {count} x {args.n} | {length:.1f} | {rates['vllm']:,.0f} | "
                    f"{rates['hf']:,.0f} | **{rates['vllm'] / rates['hf']:.1f}x** | "
                    f"{os.getloadavg()[0]:.1f} |",
                    flush=True,
                )
        finally:
            for group in groups.values():
                group.shutdown()
        print()

        print("## Weight sync (default transport: collective), median seconds per sync, 1 actor")
        print("| params | fp32 MB | vllm s | hf s |\n|---|---|---|---|")
        for hidden, layers in shapes:
            model_dir = root / f"dense-{hidden}x{layers}"
            count = save_model(dense(hidden, layers), tokenizer, model_dir)
            seconds = {e: sync_seconds(e, model_dir, root / "tokenizer", args) for e in ENGINES}
            print(
                f"| {count / 1e6:.1f}M | {count * 4 / 2**20:.0f} | {seconds['vllm']:.3f} | "
                f"{seconds['hf']:.3f} |",
                flush=True,
            )
    ray.shutdown()


if __name__ == "__main__":
    main()
