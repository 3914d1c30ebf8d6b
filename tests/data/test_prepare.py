"""The data stage as a Ray Data job: identical shards from files and synth://, mixture
proportions, budget, cycling, and bad data surfacing as DataError through Ray."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rsrl.cli import main
from rsrl.data.encode import DocumentEncoder
from rsrl.data.errors import DataError
from rsrl.data.loader import PackedLoader
from rsrl.data.packed import META, PackedDataset
from rsrl.data.prepare import prepare_data
from rsrl.data.sources import MAX_DOCUMENT_CHARS, Source
from rsrl.models.tokenizer import load_tokenizer, tokenizer_dir
from tests.data.conftest import make_plan, run_stage


def run_data_pipeline(plan):
    run_stage(plan, "tokenizer")
    return run_stage(plan, "data-pretrain")


def test_synth_files_and_synth_scheme_give_identical_shards(ray_session, tmp_path):
    files = tmp_path / "corpora"
    assert main(["data", "synth", "--out", str(files)]) == 0
    mixture = [("pretrain", 3.0), ("midtrain", 1.0)]
    by_scheme = make_plan(
        tmp_path, [{"path": f"synth://{n}", "weight": w} for n, w in mixture], name="scheme"
    )
    by_files = make_plan(
        tmp_path,
        [{"path": str(files / f"{n}.jsonl"), "weight": w} for n, w in mixture],
        name="files",
    )
    assert by_scheme.stage("data-pretrain").key != by_files.stage("data-pretrain").key
    a, b = run_data_pipeline(by_scheme), run_data_pipeline(by_files)
    assert (
        tokenizer_dir(by_scheme.stage("tokenizer").out_dir(by_scheme.workdir)) / "tokenizer.json"
    ).read_bytes() == (
        tokenizer_dir(by_files.stage("tokenizer").out_dir(by_files.workdir)) / "tokenizer.json"
    ).read_bytes()
    shards = sorted(p.name for p in a.glob("rows-*.npy"))
    assert shards and shards == sorted(p.name for p in b.glob("rows-*.npy"))
    assert all((a / s).read_bytes() == (b / s).read_bytes() for s in shards)
    data = PackedDataset(a)
    assert len(data) == 20_000 // 64 + 1 and data.seq_len == 64


def test_rows_follow_the_weights_and_the_budget(ray_session, tokenizer_stage, tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("\n".join(f"alpha beta gamma delta {i % 3 * 'x'}" for i in range(3000)))
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text("".join(json.dumps({"n": str(i)}) + "\n" for i in range(3000)))
    sources = [Source(str(words), 1.0), Source(str(numbers), 3.0, template="{n} {n}")]
    summary = prepare_data(
        sources, tokenizer_stage, tmp_path / "out", tokens=10_000, seq_len=32, seed=5
    )
    data = PackedDataset(tmp_path / "out")
    assert len(data) == summary["rows"] == 313 and summary["tokens"] == 313 * 32
    assert [s["rows"] for s in summary["sources"]] == [78, 235]
    digit_ids = set(load_tokenizer(tokenizer_stage).convert_tokens_to_ids(list("0123456789")))
    from_numbers = np.array([bool(set(row.tolist()) & digit_ids) for row in data.rows(0, 313)])
    assert from_numbers.sum() == 235  # each row comes whole from one source
    assert 0.6 < from_numbers[:100].mean() < 0.9  # interleaved, not one source after another
    again = prepare_data(
        sources, tokenizer_stage, tmp_path / "again", tokens=10_000, seq_len=32, seed=5
    )
    assert again == summary
    assert np.array_equal(PackedDataset(tmp_path / "again").rows(0, 313), data.rows(0, 313))
    other_seed = prepare_data(
        sources, tokenizer_stage, tmp_path / "seed6", tokens=10_000, seq_len=32, seed=6
    )
    assert not np.array_equal(PackedDataset(tmp_path / "seed6").rows(0, 313), data.rows(0, 313))
    assert other_seed["rows"] == 313


def test_documents_are_separated_by_eos_in_file_order(ray_session, tokenizer_stage, tmp_path):
    path = tmp_path / "docs.txt"
    docs = [f"story {i} ends here." for i in range(400)]
    path.write_text("\n".join(docs))
    prepare_data(
        [Source(str(path))],
        tokenizer_stage,
        tmp_path / "out",
        tokens=2000,
        seq_len=50,
        seed=0,
        rows_per_shard=7,
    )
    data = PackedDataset(tmp_path / "out")
    assert len(list((tmp_path / "out").glob("rows-*.npy"))) == len(range(0, len(data), 7))
    tokenizer = load_tokenizer(tokenizer_stage)
    stream = data.rows(0, len(data)).reshape(-1)
    texts = tokenizer.decode(stream).split(tokenizer.eos_token)
    assert texts[:-1] == docs[: len(texts) - 1]


def test_a_short_source_cycles_and_says_so(ray_session, tokenizer_stage, tmp_path, caplog):
    path = tmp_path / "short.jsonl"
    path.write_text('{"text": "only this one document"}\n')
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        summary = prepare_data(
            [Source(str(path))], tokenizer_stage, tmp_path / "out", tokens=300, seq_len=30, seed=0
        )
    assert "cycling through it" in caplog.text and str(path) in caplog.text
    (stats,) = summary["sources"]
    assert stats["epochs"] > 10 and stats["tokens_read"] < stats["tokens_needed"]
    assert json.loads((tmp_path / "out" / META).read_text())["sources"][0]["epochs"] > 10


def test_a_long_document_is_cut_counted_and_warned_about(
    ray_session, tokenizer_stage, tmp_path, caplog
):
    path = tmp_path / "long.jsonl"
    long_doc = " ".join(f"word{i}" for i in range(2000))  # ~11k characters
    path.write_text(json.dumps({"text": "a short one"}) + "\n" + json.dumps({"text": long_doc}))
    source = Source(str(path), max_document_chars=3000)
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        summary = prepare_data(
            [source], tokenizer_stage, tmp_path / "out", tokens=30_000, seq_len=32, seed=0
        )
    assert "1 document(s) longer than 3000 characters, each cut" in caplog.text
    (stats,) = summary["sources"]
    assert stats["documents"] == 2 and stats["documents_cut"] == 1
    assert json.loads((tmp_path / "out" / META).read_text())["sources"][0]["documents_cut"] == 1
    encoder = DocumentEncoder.from_stage_dir(tokenizer_stage)
    assert stats["tokens_read"] == len(encoder.encode(["a short one", long_doc[:3000]]))


MEASURE_ENCODING = """
import sys
from rsrl.data.encode import DocumentEncoder
from rsrl.data.prepare import encode_read_tasks
from rsrl.data.sources import Source, plan_read_tasks


def peak_mb():  # this process's peak RSS (getrusage's would count the parent's, from fork)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) // 1024


encoder = DocumentEncoder(sys.argv[1], int(sys.argv[3]), None, 0)  # `tokenizers` alone
encoder.encode(["warm up the tokenizer"])
before = peak_mb()
(task,) = plan_read_tasks(Source(sys.argv[2]))
tokens = sum(len(row["tokens"][0]) for row in encode_read_tasks({"task": [task.to_json()]},
                                                                 encoder))
print(tokens, peak_mb() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's VmHWM")
def test_one_huge_document_takes_bounded_memory(tokenizer_stage, tmp_path):
    """A document of 8M characters, at the default bound: the tokenizer sees only its first
    MAX_DOCUMENT_CHARS (whole, it takes ~1 GB: the tokenizer holds ~130 bytes a character)."""
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({"text": "lorem ipsum dolor sit amet " * 300_000}) + "\n")
    encoder = DocumentEncoder.from_stage_dir(tokenizer_stage)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            MEASURE_ENCODING,
            encoder.tokenizer_file,
            str(path),
            str(encoder.eos_id),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tokens, grew_mb = map(int, result.stdout.split())
    whole_bound = encoder.encode([("lorem ipsum dolor sit amet " * 300_000)[:MAX_DOCUMENT_CHARS]])
    assert tokens == len(whole_bound)
    assert grew_mb < 500, f"encoding one cut document grew the process by {grew_mb} MB"


def test_bad_data_in_a_ray_worker_is_a_data_error(ray_session, tokenizer_stage, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n' * 50 + '{"body": "no text"}\n')
    with pytest.raises(DataError) as err:
        prepare_data(
            [Source(str(path))],
            tokenizer_stage,
            tmp_path / "out",
            tokens=10_000,
            seq_len=32,
            seed=0,
        )
    assert err.value.problems == [
        f"source '{path}': {path}:line 51: no field 'text' "
        "(fields: body); set text_field or template to fields the "
        "records have"
    ]
    assert not (tmp_path / "out" / META).exists()
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n')
    with pytest.raises(DataError, match="holds no documents"):
        prepare_data(
            [Source(str(empty))], tokenizer_stage, tmp_path / "out2", tokens=100, seq_len=32, seed=0
        )


def test_reset_position_ids_reaches_the_loader(ray_session, tmp_path):
    plan = make_plan(
        tmp_path, [{"path": "synth://midtrain"}], tokens=4096, seq_len=128, reset_position_ids=True
    )
    data = PackedDataset(run_data_pipeline(plan))
    assert (
        data.reset_position_ids
        and data.eos_id
        == load_tokenizer(plan.stage("tokenizer").out_dir(plan.workdir)).eos_token_id
    )
    batch = next(iter(PackedLoader(data, micro_batch_size=4)))
    eos_rows, eos_cols = np.nonzero(batch["input_ids"].numpy()[:, :-1] == data.eos_id)
    assert len(eos_rows) and (batch["position_ids"][eos_rows, eos_cols + 1] == 0).all()


def _skip_stage(ctx) -> dict:
    return {}


def test_stages_run_inside_the_pipeline_and_are_cached(ray_session, tmp_path):
    from rsrl.pipeline.apply import apply_plan
    from rsrl.pipeline.cache import Status

    plan = make_plan(tmp_path, [{"path": "synth://pretrain"}], tokens=4096)
    later = {"pretrain": _skip_stage, "report": _skip_stage}  # not this stages
    first = {o.stage: o for o in apply_plan(plan, stage_fns=later)}
    assert first["data-pretrain"].result["rows"] == 4096 // 64
    assert len(PackedDataset(first["data-pretrain"].out_dir)) == 64
    again = {o.stage: o.status for o in apply_plan(plan, stage_fns=later)}
    assert again["tokenizer"] is Status.CACHED and again["data-pretrain"] is Status.CACHED
