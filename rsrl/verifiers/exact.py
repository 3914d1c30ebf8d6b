"""Exact match: the completion, stripped, equals the answer."""

from __future__ import annotations


def verify_exact(prompt: str, completion: str, answer: str, **fields) -> float:
    return float(completion.strip() == str(answer).strip())
