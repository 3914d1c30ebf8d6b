"""DataError: bad input data (missing path, empty glob, missing field, undecodable bytes).

A SpecError, so the CLI prints it as a user mistake (exit 2, no traceback). Messages name
the source as written in the spec, the file and the place in it, and what to change.
"""

from __future__ import annotations

from rsrl.errors import SpecError


class DataError(SpecError):
    """A data source cannot be read as the spec describes it."""
