"""Score one completion so that no verifier can stop a run: whatever a verifier does (raise,
hang, return nonsense), `score` returns a VerifyResult, 0 with a logged reason on failure.

The time limit is enforced from the caller's side without signals (`signal.alarm` only
works in the main thread, and rollouts are scored from wherever the controller runs): the
verifier runs in a fresh daemon thread that is abandoned when it overruns. A Python thread
cannot be killed, so an abandoned verifier keeps its CPU until it returns by itself; code
that may never return (the completion's own programs) belongs in a subprocess, which is how
the `python` verifier runs it (see rsrl.verifiers.sandbox).
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from rsrl.verifiers.registry import Verifier, VerifyResult

log = logging.getLogger("rsrl")


def score(
    verifier_fn: Verifier, prompt: str, completion: str, answer: str, timeout_s: float, **fields
) -> VerifyResult:
    """`verifier_fn(prompt, completion, answer, **fields)` as a VerifyResult, never raising.

    A float return becomes VerifyResult(float); a verifier that raises, runs past
    `timeout_s` seconds, or returns something that is not a finite number scores 0, and the
    reason is logged (warning) and returned.
    """
    outcome: list = []

    def call() -> None:
        try:
            outcome.append(verifier_fn(prompt, completion, answer, **fields))
        except BaseException as err:  # noqa: BLE001 - user code: any failure scores 0
            outcome.append(err)

    worker = threading.Thread(target=call, name="rsrl-verifier", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if not outcome:
        return _failed(verifier_fn, f"timed out after {timeout_s:g}s")
    result = outcome[0]
    if isinstance(result, BaseException):
        return _failed(verifier_fn, f"raised {type(result).__name__}: {result}")
    return _as_result(verifier_fn, result)


def _as_result(verifier_fn: Verifier, result: object) -> VerifyResult:
    value: Any  # whatever the verifier returned, float() decides
    if isinstance(result, VerifyResult):
        value, reason = result.score, result.reason
    else:
        value, reason = result, ""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return _failed(verifier_fn, f"returned {type(result).__name__}, not a score")
    if not math.isfinite(value):
        return _failed(verifier_fn, f"returned a non-finite score {value}")
    return VerifyResult(value, reason)


def _failed(verifier_fn: Verifier, reason: str) -> VerifyResult:
    name = getattr(verifier_fn, "__qualname__", repr(verifier_fn))
    log.warning("verifier %s %s; scoring 0", name, reason)
    return VerifyResult(0.0, f"verifier {reason}")
