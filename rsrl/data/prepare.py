"""The data stage: a stage's mixture of sources -> packed rows under the stage directory.

Per source, a Ray Data job reads and tokenises in parallel:

    from_items(read tasks) -> map_batches(read + encode: docs, EOS, docs, EOS ...)
                           -> iter_batches, in order -> the source's token stream (a file)

The stream is consumed in task order (`preserve_order`), so the tokens, and hence every
packed row, are the same however Ray schedules or splits the work, whether the documents
come from `rsrl data synth` files or from synth:// directly. Reading stops as soon as the
source's share of the budget is there, so a huge source is read only as far as needed,
and the stream goes to disk, so nothing has to fit in memory. Packing is then a cut of
each stream into rows of seq_len + 1 tokens, interleaved by the seeded mixture order
(`rsrl.data.mixture`) and written shard by shard (`rsrl.data.packed`).

A source that runs out before its share cycles: its stream starts again from its first
document. This is logged as a warning and recorded (`epochs` > 1) in meta.json and in the
stage result; a source with no documents at all is a DataError. Documents longer than
`max_document_chars` are cut (`rsrl.data.sources`): warned about once per source and
counted (`documents_cut`) the same way.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rsrl.data.encode import TOKEN_DTYPE, DocumentEncoder
from rsrl.data.errors import DataError
from rsrl.data.mixture import blend_order, rows_for_budget, split_rows
from rsrl.data.overlap import heldout_overlap
from rsrl.data.packed import META, default_rows_per_shard, write_rows
from rsrl.data.sources import (
    ReadTask,
    Source,
    iter_texts,
    plan_read_tasks,
    read_texts,
    warn_cut,
)
from rsrl.files import names_full_disk, write_json_atomic

if TYPE_CHECKING:  # annotation only: data and models never import the pipeline
    from rsrl.pipeline.registry import StageContext

log = logging.getLogger("rsrl")


@dataclass(frozen=True)
class SourceStats:
    path: str
    weight: float
    rows: int  # packed rows taken from this source
    tokens_needed: int
    tokens_read: int  # of its stream; < tokens_needed when it ran out
    documents: int  # documents read
    documents_cut: int  # of them, longer than max_document_chars and cut to it
    epochs: float  # tokens_needed / tokens_read when it cycled, else 1.0


@contextlib.contextmanager
def ordered_data_context() -> Iterator[None]:
    """Ray Data settings this job needs, restored afterwards."""
    import ray

    ctx = ray.data.DataContext.get_current()
    saved = (
        ctx.execution_options.preserve_order,
        ctx.raise_original_map_exception,
        ctx.enable_progress_bars,
    )
    ctx.execution_options.preserve_order = True  # rows must not depend on scheduling
    ctx.raise_original_map_exception = True  # a DataError arrives as itself, not wrapped
    ctx.enable_progress_bars = False
    try:
        yield
    except DataError as err:  # strip Ray's wrapper and notes, keep the message
        raise DataError(err.problems) from None
    finally:
        (
            ctx.execution_options.preserve_order,
            ctx.raise_original_map_exception,
            ctx.enable_progress_bars,
        ) = saved


def encode_read_tasks(batch: dict, encoder: DocumentEncoder) -> Iterator[dict]:
    """Ray Data UDF: read tasks (JSON) -> one row per text batch, its flat token array."""
    for task_json in batch["task"]:
        for texts in read_texts(ReadTask.from_json(str(task_json))):
            yield {
                "tokens": [encoder.encode(texts.texts)],
                "documents": np.array([len(texts.texts)]),
                "cut": np.array([texts.cut]),
            }


def token_dataset(source: Source, encoder: DocumentEncoder):
    """The lazy Ray Dataset of `source`'s token chunks, in document order."""
    import ray

    tasks = [{"task": t.to_json()} for t in plan_read_tasks(source)]
    return ray.data.from_items(tasks, override_num_blocks=len(tasks)).map_batches(
        encode_read_tasks,  # type: ignore[arg-type]  # ray types UDFs without fn_kwargs
        batch_size=1,
        fn_kwargs={"encoder": encoder},
    )


def write_token_stream(
    source: Source, encoder: DocumentEncoder, need: int, path: Path
) -> tuple[int, int, int]:
    """Write the first `need` tokens of `source` to `path` (int32); (tokens, documents,
    documents cut)."""
    written = documents = cut = 0
    batches = iter(
        token_dataset(source, encoder).iter_batches(batch_size=None, batch_format="numpy")
    )
    with names_full_disk(path), path.open("wb") as f, contextlib.closing(batches):
        for batch in batches:
            for tokens, docs, docs_cut in zip(batch["tokens"], batch["documents"], batch["cut"]):
                chunk = np.asarray(tokens, dtype=TOKEN_DTYPE)[: need - written]
                f.write(chunk.tobytes())
                written += len(chunk)
                documents += int(docs)
                cut += int(docs_cut)
            if written >= need:
                break
    return written, documents, cut


def prepare_data(
    sources: Sequence[Source],
    tokenizer_stage_dir: str | Path,
    out_dir: Path,
    *,
    tokens: int,
    seq_len: int,
    seed: int,
    reset_position_ids: bool = False,
    rows_per_shard: int | None = None,
) -> dict:
    """Pack `tokens` tokens of the mixture into rows under `out_dir`; returns the summary.

    Rows per source follow the weights; the interleaving follows `seed`. A rerun after an
    interruption starts over (the stage is cheap next to training).
    """
    _clear(out_dir)
    encoder = DocumentEncoder.from_stage_dir(tokenizer_stage_dir)
    width = seq_len + 1
    rows = split_rows(rows_for_budget(tokens, seq_len), [s.weight for s in sources])
    tmp = out_dir / "streams.tmp"
    tmp.mkdir()
    streams, stats = [], []
    with ordered_data_context():
        for i, (source, n_rows) in enumerate(zip(sources, rows)):
            path = tmp / f"source-{i}.bin"
            stream_stats = _stream_source(source, encoder, n_rows * width, path)
            stats.append(SourceStats(source.path, source.weight, n_rows, **stream_stats))
            streams.append(
                np.memmap(path, dtype=TOKEN_DTYPE, mode="r")
                if n_rows
                else np.zeros(1, dtype=TOKEN_DTYPE)
            )
    rows_per_shard = rows_per_shard or default_rows_per_shard(seq_len)
    shards = write_rows(out_dir, streams, blend_order(rows, seed), seq_len, rows_per_shard)
    del streams  # release the memory maps before removing their files
    shutil.rmtree(tmp)
    summary = {
        "rows": sum(rows),
        "tokens": sum(rows) * seq_len,
        "seq_len": seq_len,
        "num_shards": len(shards),
        "sources": [asdict(s) for s in stats],
    }
    meta = {
        **summary,
        "num_rows": sum(rows),
        "rows_per_shard": rows_per_shard,
        "shards": shards,
        "eos_id": encoder.eos_id,
        "pad_id": encoder.pad_id,
        "vocab_size": encoder.vocab_size,
        "reset_position_ids": reset_position_ids,
        "seed": seed,
    }
    write_json_atomic(out_dir / META, meta)
    return summary


def _stream_source(source: Source, encoder: DocumentEncoder, need: int, path: Path) -> dict:
    if need == 0:
        log.info("data: source %s gets no rows at weight %g", source.path, source.weight)
        return {
            "tokens_needed": 0,
            "tokens_read": 0,
            "documents": 0,
            "documents_cut": 0,
            "epochs": 0.0,
        }
    read, documents, cut = write_token_stream(source, encoder, need, path)
    warn_cut(source, cut)
    if read == 0:
        raise DataError(
            f"source '{source.path}': holds no documents (every record is "
            f"empty); give it text or remove it from the mixture"
        )
    epochs = need / read
    if read < need:
        log.warning(
            "data: source %s has %d tokens but its share of the budget is %d: "
            "cycling through it %.2f times",
            source.path,
            read,
            need,
            epochs,
        )
    return {
        "tokens_needed": need,
        "tokens_read": read,
        "documents": documents,
        "documents_cut": cut,
        "epochs": round(max(epochs, 1.0), 4),
    }


def _clear(out_dir: Path) -> None:
    """Remove what an interrupted run left (never the manifest's directory itself)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for leftover in [out_dir / META, *out_dir.glob("rows-*.npy")]:
        leftover.unlink(missing_ok=True)
    shutil.rmtree(out_dir / "streams.tmp", ignore_errors=True)


def data_stage(ctx: StageContext) -> dict:
    """Stage function (kind "data"): packs one training stage's mixture; with the spec's
    held-out text in its config, also measures what that text shares with the documents
    read (`heldout_overlap` in meta.json and the result)."""
    cfg = ctx.stage.config
    sources = [Source.from_config(s) for s in cfg["data"]]
    summary = prepare_data(
        sources,
        ctx.inputs["tokenizer"],
        ctx.out_dir,
        tokens=cfg["tokens"],
        seq_len=cfg["seq_len"],
        seed=cfg["seed"],
        reset_position_ids=cfg["reset_position_ids"],
    )
    if cfg.get("heldout"):
        summary["heldout_overlap"] = _overlap(Source.from_config(cfg["heldout"]), sources, summary)
        meta_path = ctx.out_dir / META
        meta = json.loads(meta_path.read_text())
        write_json_atomic(meta_path, {**meta, "heldout_overlap": summary["heldout_overlap"]})
    return summary


def _overlap(heldout: Source, sources: Sequence[Source], summary: dict) -> dict:
    """The held-out text against the documents this stage read from each source."""
    read = {s["path"]: s["documents"] for s in summary["sources"]}
    training = (
        text
        for source in sources
        for text in itertools.islice(iter_texts(source), read[source.path])
    )
    return {"heldout": heldout.path, **heldout_overlap(list(iter_texts(heldout)), training)}
