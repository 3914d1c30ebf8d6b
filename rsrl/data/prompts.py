"""Readers for RL prompts, eval suites and held-out text, from the same sources as training
data (files, directories, globs or synth://NAME)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rsrl.data.config import HeldoutSpec, PromptSourceSpec
from rsrl.data.errors import DataError
from rsrl.data.sources import LineAt, Source, iter_records, iter_texts


def read_prompts(spec: PromptSourceSpec) -> list[dict[str, Any]]:
    """Every record of `spec.path` as {"prompt", "answer", <its other fields>}, in order.

    `prompt` and `answer` come from `prompt_field` and `answer_field`; the answer is given
    as text (verifiers compare strings). The other fields (difficulty, tests, ...) are
    passed through unchanged for the verifier.
    """
    source = Source(spec.path)
    prompts = []
    for where, record in iter_records(source):
        for field in (spec.prompt_field, spec.answer_field):
            if field not in record:
                raise source.missing_field(
                    field, record, where, fix="set prompt_field and answer_field"
                )
        if not _matches(record, spec.where or {}, source, where):
            continue
        prompts.append(
            {
                **record,
                "prompt": str(record[spec.prompt_field]),
                "answer": str(record[spec.answer_field]),
            }
        )
        if spec.limit is not None and len(prompts) >= spec.limit:
            break
    if not prompts:
        matching = f" matching where={spec.where}" if spec.where else ""
        raise DataError(f"source '{spec.path}': holds no prompts{matching}")
    return prompts


def _matches(
    record: Mapping[str, Any],
    conditions: dict[str, Any],
    source: Source,
    location: str | LineAt,
) -> bool:
    """`where`: every named field equals the value, or one of the listed values."""
    for name, wanted in conditions.items():
        if name not in record:
            raise source.missing_field(name, record, location, fix="point `where`")
        if record[name] not in (wanted if isinstance(wanted, list) else [wanted]):
            return False
    return True


def read_heldout_texts(spec: HeldoutSpec) -> list[str]:
    """The documents of `spec.path` (field `text_field`), in order; the caller tokenises
    them and scores the first `spec.tokens` tokens."""
    texts = list(iter_texts(Source(spec.path, text_field=spec.text_field)))
    if not texts:
        raise DataError(f"source '{spec.path}': holds no text")
    return texts
