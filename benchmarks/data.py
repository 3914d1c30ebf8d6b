"""Tokenisation + packing throughput: the data stage's Ray Data job against a plain loop.

Both read the same jsonl files (copies of the synthetic pre-training corpus under
different seeds, --mb in all) through the same read tasks, encode with the same
tokenizer and pack with the same code; only the way the read+encode work is run differs:

- single process: a Python loop over the read tasks in this process (the Rust tokenizer
  still uses its own threads inside `encode_batch`, as anyone's loop would), and the same
  loop with those threads off (TOKENIZERS_PARALLELISM=false), one core's worth;
- Ray Data: `rsrl.data.prepare`'s job, the read tasks spread over Ray workers.

The token streams are checked equal, then tokens/s and the ratio are printed. Ray starts
its workers in a warm-up run on one file first (its time is printed, not counted).

    python benchmarks/data.py            # ~100 MB
    python benchmarks/data.py --mb 10    # quicker
    python benchmarks/data.py --mb 0.2   # a smoke run: the first lines of one copy
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from rsrl.data.encode import TOKEN_DTYPE, DocumentEncoder
from rsrl.data.mixture import blend_order
from rsrl.data.packed import default_rows_per_shard, write_rows
from rsrl.data.prepare import ordered_data_context, write_token_stream
from rsrl.data.sources import Source, plan_read_tasks, read_texts
from rsrl.data.synth import write_corpora
from rsrl.models.tokenizer import sample_texts, tokenizer_dir, train_bpe

SEQ_LEN = 256
VOCAB = 2048
UNLIMITED = np.iinfo(np.int64).max


def write_corpus(out: Path, megabytes: float) -> list[Path]:
    """Copies of the pretrain corpus under seeds 0, 1, ... until `megabytes` are written.
    Below one copy (~12.6 MB), the first whole lines of one copy, at least one."""
    files: list[Path] = []
    seed = 0
    while sum(f.stat().st_size for f in files) < megabytes * 2**20:
        (path,) = write_corpora(out / f"seed-{seed}", seed=seed, names=("pretrain",))
        files.append(path.rename(out / f"pretrain-{seed:03d}.jsonl"))
        seed += 1
    if files[0].stat().st_size > megabytes * 2**20:
        lines = files[0].read_bytes().splitlines(keepends=True)
        kept, size = [lines[0]], len(lines[0])
        for line in lines[1:]:
            size += len(line)
            if size > megabytes * 2**20:
                break
            kept.append(line)
        files[0].write_bytes(b"".join(kept))
    return files


def train_tokenizer(stage_dir: Path, corpus: Path) -> DocumentEncoder:
    texts = sample_texts([Source(str(corpus))])
    train_bpe(texts, VOCAB).save_pretrained(str(tokenizer_dir(stage_dir)))
    return DocumentEncoder.from_stage_dir(stage_dir)


def stream_in_one_process(source: Source, encoder: DocumentEncoder, path: Path) -> int:
    written = 0
    with path.open("wb") as f:
        for task in plan_read_tasks(source):
            for batch in read_texts(task):
                tokens = encoder.encode(batch.texts)
                f.write(tokens.tobytes())
                written += len(tokens)
    return written


def stream_with_ray(source: Source, encoder: DocumentEncoder, path: Path) -> int:
    with ordered_data_context():
        return write_token_stream(source, encoder, UNLIMITED, path)[0]


def pack(stream_path: Path, out_dir: Path) -> int:
    """All whole rows of the stream, written as the data stage writes them."""
    stream = np.memmap(stream_path, dtype=TOKEN_DTYPE, mode="r")
    rows = len(stream) // (SEQ_LEN + 1)
    out_dir.mkdir()
    write_rows(
        out_dir, [stream], blend_order([rows], seed=0), SEQ_LEN, default_rows_per_shard(SEQ_LEN)
    )
    return rows


def timed(label: str, stream_fn, source: Source, encoder: DocumentEncoder, work: Path) -> tuple:
    start = time.perf_counter()
    tokens = stream_fn(source, encoder, work / f"{label}.bin")
    rows = pack(work / f"{label}.bin", work / f"{label}-rows")
    return tokens, rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="jsonl megabytes to process")
    args = parser.parse_args()

    import ray

    ray.init(
        address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR"
    )
    with tempfile.TemporaryDirectory(prefix="rsrl-bench-data-") as tmp:
        work = Path(tmp)
        files = write_corpus(work / "corpus", args.mb)
        megabytes = sum(f.stat().st_size for f in files) / 2**20
        encoder = train_tokenizer(work / "tokenizer-stage", files[0])
        source = Source(str(work / "corpus" / "*.jsonl"))
        start = time.perf_counter()
        stream_with_ray(Source(str(files[0])), encoder, work / "warmup.bin")
        warmup = time.perf_counter() - start

        single = timed("single", stream_in_one_process, source, encoder, work)
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # read at each encode call
        one_thread = timed("one-thread", stream_in_one_process, source, encoder, work)
        del os.environ["TOKENIZERS_PARALLELISM"]
        parallel = timed("ray", stream_with_ray, source, encoder, work)
        assert single[:2] == one_thread[:2] == parallel[:2], "all paths give the same tokens"
        assert (work / "single.bin").read_bytes() == (work / "ray.bin").read_bytes()

    tokens = single[0]
    print(
        f"corpus: {len(files)} jsonl files, {megabytes:.1f} MB, {tokens:,} tokens "
        f"(BPE {VOCAB}), packed into {single[1]:,} rows of {SEQ_LEN + 1}; "
        f"{os.cpu_count()} CPUs"
    )
    for label, (_, _, seconds) in (
        ("single process", single),
        ("  one tokenizer thread", one_thread),
        ("Ray Data", parallel),
    ):
        print(f"{label:24s}: {seconds:7.2f} s  {tokens / seconds:12,.0f} tokens/s")
    print(
        f"(Ray worker warm-up {warmup:.1f} s not counted; load average "
        f"{os.getloadavg()[0]:.1f} at the end)"
    )
    print(
        f"ratio Ray Data / single process: {single[2] / parallel[2]:.2f}x "
        f"(vs one tokenizer thread: {one_thread[2] / parallel[2]:.2f}x)"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
