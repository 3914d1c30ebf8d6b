"""Quieting third-party loggers whose expected messages would bury rsrl's own output."""

from __future__ import annotations

import logging


def drop_below(logger_name: str, level: int) -> None:
    """Drop the records of `logger_name` below `level`. A filter rather than a level: vLLM
    and Ray Train configure logging with dictConfig, which resets child loggers' levels but
    keeps their filters."""
    logging.getLogger(logger_name).addFilter(lambda record: record.levelno >= level)
