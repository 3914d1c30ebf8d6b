"""Reading data sources: documents from files or a built-in corpus, as text.

Formats (by suffix):
- jsonl, jsonl.gz: one JSON object a line; the text is `text_field` (default "text") or
  `template` filled from the object's fields, e.g. "Q: {question}\\nA: {answer}".
- txt, txt.gz: one document a line, as the record {"text": line}.
- parquet: one document a row, fields as in jsonl.
- synth://NAME: the records of a built-in corpus (`rsrl.data.synth`).
- hf://NAME[/CONFIG][@SPLIT] or a save_to_disk directory: the rows of a Hugging Face
  dataset's split, fields as in jsonl (`rsrl.data.hf`).
Blank lines and empty texts are skipped. Files must be UTF-8. A document longer than
`max_document_chars` (MAX_DOCUMENT_CHARS) is cut to its first that many characters, so the
memory tokenising it takes stays bounded; readers count and warn about such documents.

A source is cut into read tasks: byte ranges of plain jsonl/txt files (a line belongs to the
range it starts in; an error still names its line number), row groups of parquet files,
whole compressed files and arrow files (a Hugging Face dataset's shards), chunks of a
corpus. Tasks are independent, so Ray Data reads one large file with several workers, and
reading the tasks in order gives the documents in file order, which the packer relies on.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import logging
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.data import hf, synth
from rsrl.data.errors import DataError
from rsrl.data.paths import file_format, is_synthetic, resolve_files, synth_name

log = logging.getLogger("rsrl")

SPLIT_BYTES = 16 * 2**20  # bytes of a plain file per read task
SYNTH_CHUNK = 4096  # records of a built-in corpus per read task
TEXT_BATCH = 1024  # documents per batch handed to the tokenizer, at most
TEXT_BATCH_CHARS = 4_000_000  # characters per batch, at most (plus one document)
# A longer document is cut to its first MAX_DOCUMENT_CHARS characters: the tokenizer holds
# ~150 bytes per character of a batch, so one 50 MB document would take ~8 GB.
MAX_DOCUMENT_CHARS = 1_000_000


def template_problem(template: str) -> str | None:
    """What is wrong with a record template before any record is read, or None."""
    try:
        fields = [
            field for _, field, _, _ in string.Formatter().parse(template) if field is not None
        ]
    except ValueError as err:
        return f"is not a template ({err}); write a literal brace as {{{{ or }}}}"
    if not fields:
        return "names no field; write fields as {name}, e.g. 'Q: {question}\\nA: {answer}'"
    if any(not field or field.isdigit() for field in fields):
        return "has a positional placeholder ({} or {0}); name the record's field: {question}"
    return None


@dataclass(frozen=True)
class Source:
    """One entry of a stage's `data:` list (see DataSourceSpec)."""

    path: str
    weight: float = 1.0
    text_field: str = "text"
    template: str | None = None
    max_document_chars: int = MAX_DOCUMENT_CHARS  # not a spec field: tests lower it

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any) -> Source:
        """From a plain dict (a stage config) or a DataSourceSpec."""
        if not isinstance(config, Mapping):
            config = dataclasses.asdict(config)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in config.items() if k in names})

    def text_of(self, record: Mapping[str, Any], where: str | LineAt) -> str:
        """The document text of `record`, or a DataError saying which field is missing."""
        if self.template is not None:
            return self._fill_template(self.template, record, where)
        if self.text_field not in record:
            raise self.missing_field(self.text_field, record, where)
        value = record[self.text_field]
        if not isinstance(value, str):
            raise DataError(
                f"source '{self.path}': {where}: field '{self.text_field}' is "
                f"{type(value).__name__}, not text"
            )
        return value

    def _fill_template(self, template: str, record: Mapping[str, Any], where: str | LineAt) -> str:
        for _, field, _, _ in string.Formatter().parse(template):
            if field and field not in record:
                raise self.missing_field(field, record, where)
        try:
            return template.format_map(record)
        except (ValueError, IndexError, AttributeError) as err:
            raise DataError(
                f"source '{self.path}': template {self.template!r} cannot be "
                f"filled: {err}; use plain {{field}} placeholders"
            ) from None

    def missing_field(
        self,
        field: str,
        record: Mapping[str, Any],
        where: str | LineAt,
        fix: str = "set text_field or template",
    ) -> DataError:
        return DataError(
            f"source '{self.path}': {where}: no field '{field}' (fields: "
            f"{', '.join(map(str, record)) or 'none'}); {fix} to fields the "
            f"records have"
        )


@dataclass(frozen=True)
class ReadTask:
    """A slice of a source that one worker reads."""

    source: Source
    file: str  # "" for synth://
    fmt: str  # jsonl | txt | parquet | arrow | synth
    start: int  # byte offset (plain jsonl/txt), row group (parquet), record (synth)
    stop: int  # exclusive; -1: to the end (compressed and arrow files)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReadTask:
        fields = json.loads(text)
        return cls(**{**fields, "source": Source(**fields["source"])})


def plan_read_tasks(source: Source, split_bytes: int = SPLIT_BYTES) -> list[ReadTask]:
    """The read tasks of `source`, in document order."""
    if is_synthetic(source.path):
        count = len(synth.generate(synth_name(source.path)))
        return [
            ReadTask(source, "", "synth", i, min(i + SYNTH_CHUNK, count))
            for i in range(0, count, SYNTH_CHUNK)
        ]
    if hf.is_hf_source(source.path):
        return [ReadTask(source, file, "arrow", 0, -1) for file in hf.arrow_files(source.path)]
    tasks = []
    for file in resolve_files(source.path):
        fmt = file_format(file)
        assert fmt is not None  # resolve_files rejects files of unknown formats
        if fmt == "parquet":
            tasks += [
                ReadTask(source, str(file), fmt, g, g + 1)
                for g in range(_parquet_row_groups(source, file))
            ]
        elif file.name.endswith(".gz"):
            tasks.append(ReadTask(source, str(file), fmt, 0, -1))
        else:
            size = file.stat().st_size
            tasks += [
                ReadTask(source, str(file), fmt, a, min(a + split_bytes, size))
                for a in range(0, max(size, 1), split_bytes)
            ]
    return tasks


def read_records(task: ReadTask) -> Iterator[tuple[str | LineAt, Mapping[str, Any]]]:
    """(where, record) pairs of `task`; `where` locates the record for error messages (a
    string, or a `LineAt` that becomes one)."""
    if task.fmt == "synth":
        records = synth.generate(synth_name(task.source.path))
        for i in range(task.start, task.stop):
            yield f"record {i}", records[i]
    elif task.fmt == "parquet":
        yield from _parquet_records(task)
    elif task.fmt == "arrow":
        yield from _arrow_records(task)
    else:
        for where, line in _decoded_lines(task):
            yield where, _parse_line(task, line, where)


@dataclass(frozen=True)
class TextBatch:
    texts: list[str]
    cut: int  # of them, documents longer than the source's max_document_chars, cut to it


def read_texts(task: ReadTask, batch_size: int = TEXT_BATCH) -> Iterator[TextBatch]:
    """The non-empty document texts of `task`, in batches of at most `batch_size` documents
    and about TEXT_BATCH_CHARS characters; each cut to `max_document_chars`."""
    limit = task.source.max_document_chars
    batch: list[str] = []
    chars = cut = 0
    for where, record in read_records(task):
        text = task.source.text_of(record, where)
        if len(text) > limit:
            text, cut = text[:limit], cut + 1
        if text:
            batch.append(text)
            chars += len(text)
        if len(batch) == batch_size or chars >= TEXT_BATCH_CHARS:
            yield TextBatch(batch, cut)
            batch, chars, cut = [], 0, 0
    if batch:
        yield TextBatch(batch, cut)


def warn_cut(source: Source, cut: int) -> None:
    """The one warning about `source`'s documents that were cut (none: no warning)."""
    if cut:
        log.warning(
            "data: source %s: %d document(s) longer than %d characters, each cut to "
            "its first %d; split such documents into several records if all their "
            "text matters",
            source.path,
            cut,
            source.max_document_chars,
            source.max_document_chars,
        )


def iter_texts(source: Source) -> Iterator[str]:
    """Every document text of `source`, in order, in this process (warns once, when the
    caller stops, about any documents cut)."""
    cut = 0
    try:
        for task in plan_read_tasks(source):
            for batch in read_texts(task):
                cut += batch.cut
                yield from batch.texts
    finally:
        warn_cut(source, cut)


def iter_records(source: Source) -> Iterator[tuple[str | LineAt, Mapping[str, Any]]]:
    """Every (where, record) of `source`, in order, in this process."""
    for task in plan_read_tasks(source):
        yield from read_records(task)


def _parse_line(task: ReadTask, line: str, where: str | LineAt) -> Mapping[str, Any]:
    if task.fmt == "txt":
        return {"text": line}
    try:
        record = json.loads(line)
    except ValueError as err:
        raise DataError(
            f"source '{task.source.path}': {where}: not valid JSON ({err}); "
            f"jsonl files hold one JSON object a line"
        ) from None
    if not isinstance(record, dict):
        raise DataError(
            f"source '{task.source.path}': {where}: a JSON "
            f"{type(record).__name__}, expected an object with the text field"
        )
    return record


def _decoded_lines(task: ReadTask) -> Iterator[tuple[str | LineAt, str]]:
    for where, raw in _raw_lines(task):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            raise DataError(
                f"source '{task.source.path}': {where}: undecodable bytes "
                f"({err.reason} at byte {err.start} of the line); files must be "
                f"UTF-8: re-encode it (e.g. iconv -t UTF-8)"
            ) from None
        if line.strip():
            yield where, line


def _raw_lines(task: ReadTask) -> Iterator[tuple[str | LineAt, bytes]]:
    if task.stop < 0:  # compressed: read whole, count lines
        try:
            with gzip.open(task.file, "rb") as f:
                for number, raw in enumerate(f, start=1):
                    yield f"{task.file}:line {number}", raw
        except (OSError, EOFError) as err:
            raise DataError(
                f"source '{task.source.path}': {task.file}: not a readable gzip file ({err})"
            ) from None
        return
    with open(task.file, "rb") as f:
        pos = task.start
        if pos > 0:  # the line straddling `start` belongs to the previous task
            f.seek(pos - 1)
            pos += len(f.readline()) - 1
        while pos < task.stop:
            raw = f.readline()
            if not raw:
                break
            yield LineAt(task.file, pos), raw
            pos += len(raw)


class LineAt:
    """Where a line of a plain file starts, shown as `FILE:line N`. The number is counted
    only when a message shows it: a read task starting deep in a large file does not count
    the lines before it unless one of its records is bad."""

    def __init__(self, file: str, offset: int):
        self.file, self.offset = file, offset

    def __str__(self) -> str:
        newlines, left = 0, self.offset
        with open(self.file, "rb") as f:
            while left > 0:
                chunk = f.read(min(left, 2**20))
                if not chunk:
                    break
                newlines += chunk.count(b"\n")
                left -= len(chunk)
        return f"{self.file}:line {newlines + 1}"


def _parquet_row_groups(source: Source, file: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file).num_row_groups
    except (pa.ArrowException, OSError) as err:
        raise DataError(
            f"source '{source.path}': {file}: not a readable parquet file ({err})"
        ) from None


def _parquet_records(task: ReadTask) -> Iterator[tuple[str, Mapping[str, Any]]]:
    import pyarrow.parquet as pq

    table = pq.ParquetFile(task.file).read_row_group(task.start)
    for i, record in enumerate(table.to_pylist()):
        where = f"{task.file}:row group {task.start} row {i}"
        yield where, {k: _utf8(task, v, where) for k, v in record.items()}


def _arrow_records(task: ReadTask) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The rows of an arrow stream file as `datasets` writes it, one record batch at a time."""
    import pyarrow as pa

    row = 0
    with pa.memory_map(task.file) as f:
        for batch in pa.ipc.open_stream(f):
            for record in batch.to_pylist():
                where = f"{task.file}:row {row}"
                yield where, {k: _utf8(task, v, where) for k, v in record.items()}
                row += 1


def _utf8(task: ReadTask, value: Any, where: str) -> Any:
    if not isinstance(value, bytes):
        return value
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"source '{task.source.path}': {where}: undecodable bytes "
            f"({err.reason}); store text as UTF-8"
        ) from None
