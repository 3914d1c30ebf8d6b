"""The one error type for user mistakes: it names the field, the value and the fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class SpecError(Exception):
    """One or more mistakes in a spec. The CLI prints them and exits 2, without a traceback."""

    def __init__(self, problems: Sequence[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
