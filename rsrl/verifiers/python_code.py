"""The `python` verifier: run the completion's code against the item's tests in a sandbox.

Item fields: `tests` (a string of Python, e.g. asserts, or a list of such strings, each
one test); without `tests`, the item's `answer` is taken as the test code. The code is the
last fenced ```python block of the completion, else its last fenced block, else the whole
completion. Score 1 when every test passes, else 0; the reason says how many passed.

Limits come from the verifier's options (rl.verifier.options / a suite's verifier.options):
`wall_s`, `cpu_s`, `memory_mb`, `output_bytes`, `max_processes`, `tmp_mb` (see
SandboxLimits; what the sandbox guarantees is in rsrl/verifiers/sandbox.py). Keep
`wall_s` below the verifier's `timeout_s` so the sandbox, not the caller, ends slow code.

Known reward hacks this does not stop: objects whose `__eq__` always returns True, and code
that deliberately digs the verdict nonce out of the harness's frames (see sandbox_child.py).
"""

from __future__ import annotations

import dataclasses
import re

from rsrl.verifiers.registry import VerifyResult
from rsrl.verifiers.sandbox import SandboxLimits, run_tests

_FENCED = re.compile(r"```([\w+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_LIMIT_FIELDS = {f.name for f in dataclasses.fields(SandboxLimits)}


def extract_code(completion: str) -> str:
    """The program a completion gives: its last ```python block, last ``` block, or all."""
    blocks = _FENCED.findall(completion)
    python_blocks = [body for lang, body in blocks if lang.lower() in ("python", "py", "python3")]
    if python_blocks:
        return python_blocks[-1]
    return blocks[-1][1] if blocks else completion


def verify_python(
    prompt: str, completion: str, answer: str, tests: str | list | None = None, **fields
) -> VerifyResult:
    cases = _as_test_list(tests if tests is not None else answer)
    if not cases:
        return VerifyResult(0.0, "item has no tests")
    limits = SandboxLimits(**{k: v for k, v in fields.items() if k in _LIMIT_FIELDS})
    report = run_tests(extract_code(completion), cases, limits)
    ok = report.total > 0 and report.passed == report.total
    reason = "" if ok else f"{report.passed}/{report.total} tests passed; {report.error}"
    return VerifyResult(float(ok), reason)


def _as_test_list(tests: str | list) -> list[str]:
    if isinstance(tests, str):
        return [tests] if tests.strip() else []
    return [str(t) for t in tests]
