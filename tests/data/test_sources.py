"""Reading sources: every format, byte-range splitting, templates, and bad data errors."""

import gzip
import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rsrl.data.errors import DataError
from rsrl.data.paths import resolve_files
from rsrl.data.sources import ReadTask, Source, iter_texts, plan_read_tasks, read_texts
from rsrl.data.synth import generate as synth_records
from rsrl.errors import SpecError

DOCS = [f"document {i}: " + "word " * (i % 7) for i in range(200)]


def write_jsonl(path, records, opener=open):
    with opener(path, "wt", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return path


@pytest.fixture
def corpus_dir(tmp_path):
    """The same 200 documents as jsonl, jsonl.gz, txt and parquet (3 row groups)."""
    records = [{"text": d, "id": i} for i, d in enumerate(DOCS)]
    write_jsonl(tmp_path / "a.jsonl", records)
    write_jsonl(tmp_path / "b.jsonl.gz", records, opener=gzip.open)
    (tmp_path / "c.txt").write_text("\n".join(DOCS) + "\n\n")
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "d.parquet", row_group_size=70)
    return tmp_path


@pytest.mark.parametrize("name", ["a.jsonl", "b.jsonl.gz", "c.txt", "d.parquet"])
def test_every_format_reads_the_same_documents(corpus_dir, name):
    assert list(iter_texts(Source(str(corpus_dir / name)))) == DOCS


def test_directories_and_globs_read_files_in_sorted_order(corpus_dir):
    (corpus_dir / "_SUCCESS").write_text("")
    assert [p.name for p in resolve_files(str(corpus_dir))] == [
        "a.jsonl",
        "b.jsonl.gz",
        "c.txt",
        "d.parquet",
    ]
    assert list(iter_texts(Source(str(corpus_dir)))) == DOCS * 4
    assert list(iter_texts(Source(str(corpus_dir / "*.jsonl*")))) == DOCS * 2


def test_parquet_is_split_by_row_group(corpus_dir):
    tasks = plan_read_tasks(Source(str(corpus_dir / "d.parquet")))
    assert [(t.start, t.stop) for t in tasks] == [(0, 1), (1, 2), (2, 3)]


@pytest.mark.parametrize("split_bytes", [1, 7, 64, 1000, 10**9])
def test_byte_ranges_give_each_line_exactly_once(corpus_dir, split_bytes):
    source = Source(str(corpus_dir / "a.jsonl"))
    tasks = plan_read_tasks(source, split_bytes=split_bytes)
    texts = [t for task in tasks for batch in read_texts(task, batch_size=13) for t in batch.texts]
    assert texts == DOCS


def test_read_tasks_travel_as_json(corpus_dir):
    task = plan_read_tasks(Source(str(corpus_dir / "a.jsonl"), 2.0, template="{id}"))[0]
    assert ReadTask.from_json(task.to_json()) == task


def test_template_and_text_field(tmp_path):
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "2+2?", "answer": 4, "body": "b"}])
    assert list(iter_texts(Source(str(path), template="Q: {question}\nA: {answer}"))) == [
        "Q: 2+2?\nA: 4"
    ]
    assert list(iter_texts(Source(str(path), text_field="body"))) == ["b"]


def test_empty_texts_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": ""}\n\n   \n{"text": "kept"}\r\n')
    assert list(iter_texts(Source(str(path)))) == ["kept"]


def test_synth_sources_are_chunked_in_order():
    source = Source("synth://rl-arith", template="{prompt} {answer}")
    tasks = plan_read_tasks(source)
    assert len(tasks) == 1 and tasks[0].stop == 2000
    first = synth_records("rl-arith")[0]
    assert next(iter_texts(source)) == f"{first['prompt']} {first['answer']}"


# Bad data: each error is a SpecError naming the source and what to fix.


def test_missing_path_and_empty_glob(tmp_path):
    with pytest.raises(SpecError, match="'.*nope.jsonl' does not exist"):
        resolve_files(str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match="no files match the glob"):
        resolve_files(str(tmp_path / "*.parquet"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .jsonl.gz, .jsonl, .txt.gz, .txt, .parquet files"):
        resolve_files(str(tmp_path / "empty"))
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file .*x.csv"):
        resolve_files(str(tmp_path / "x.csv"))


def test_missing_field_names_source_file_line_and_fields(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"text": "ok"}, {"body": "no text"}])
    with pytest.raises(DataError) as err:
        list(iter_texts(Source(str(path))))
    message = str(err.value)
    assert f"source '{path}'" in message and "x.jsonl:line 2" in message
    assert "no field 'text' (fields: body)" in message and "text_field" in message
    with pytest.raises(DataError, match="no field 'question'"):
        list(iter_texts(Source(str(path), template="{question}")))


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"text": "ok"}\n{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.jsonl:line 2: undecodable bytes .*UTF-8"):
        list(iter_texts(Source(str(path))))
    gz = tmp_path / "latin1.txt.gz"
    gz.write_bytes(gzip.compress("fine\ncaf\xe9\n".encode("latin-1")))
    with pytest.raises(DataError, match=r"latin1.txt.gz:line 2: undecodable bytes"):
        list(iter_texts(Source(str(gz))))


def test_invalid_json_and_non_objects(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"text": "a"}\n{"text": \n')
    with pytest.raises(DataError, match="not valid JSON"):
        list(iter_texts(Source(str(path))))
    path.write_text('["a list"]\n')
    with pytest.raises(DataError, match="a JSON list, expected an object"):
        list(iter_texts(Source(str(path))))


def test_non_text_field_and_corrupt_files(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"text": 3}])
    with pytest.raises(DataError, match="field 'text' is int, not text"):
        list(iter_texts(Source(str(path))))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        plan_read_tasks(Source(str(tmp_path / "bad.parquet")))
    (tmp_path / "bad.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a readable gzip file"):
        list(iter_texts(Source(str(tmp_path / "bad.jsonl.gz"))))


@pytest.mark.parametrize("split_bytes", [7, 40, 10**9])
def test_a_bad_line_is_named_by_its_line_number_in_any_read_task(tmp_path, split_bytes):
    path = tmp_path / "x.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in DOCS[:9]) + "{oops\n")
    with pytest.raises(DataError, match=r"x.jsonl:line 10: not valid JSON"):
        for task in plan_read_tasks(Source(str(path)), split_bytes=split_bytes):
            list(read_texts(task))


def test_a_document_over_the_bound_is_cut_counted_and_warned_about(tmp_path, caplog):
    path = write_jsonl(
        tmp_path / "big.jsonl",
        [{"text": "short"}, {"text": "x" * 2500}, {"text": "y" * 1000}, {"text": "z" * 1001}],
    )
    source = Source(str(path), max_document_chars=1000)
    batches = [b for task in plan_read_tasks(source) for b in read_texts(task)]
    assert [len(t) for b in batches for t in b.texts] == [5, 1000, 1000, 1000]
    assert sum(b.cut for b in batches) == 2  # 2500 and 1001 characters; 1000 is not over
    with caplog.at_level(logging.WARNING, logger="rsrl"):
        texts = list(iter_texts(source))
    assert texts[1] == "x" * 1000 and len(texts) == 4
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"data: source {path}: 2 document(s) longer than 1000 characters, "
        "each cut to its first 1000; split such documents into several records "
        "if all their text matters"
    ], warnings


def test_batches_are_bounded_in_characters(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "many.jsonl", [{"text": "w" * 900}] * 10)
    source = Source(str(path), max_document_chars=1000)
    monkeypatch.setattr("rsrl.data.sources.TEXT_BATCH_CHARS", 2000)
    batches = [b.texts for task in plan_read_tasks(source) for b in read_texts(task)]
    assert [len(b) for b in batches] == [3, 3, 3, 1]
