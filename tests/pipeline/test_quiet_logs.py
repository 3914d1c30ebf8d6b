"""The third-party loggers rsrl quiets are the ones those libraries really log through, so a
Ray or vLLM upgrade that moves them fails here instead of bringing the noise back."""

import importlib.util
import logging
from pathlib import Path

from rsrl.logs import drop_below
from rsrl.pipeline.session import quiet_ray_internals
from rsrl.rl.rollout.vllm_engine import EXPECTED_WARNINGS


def passes(logger_name: str, level: int) -> bool:
    record = logging.LogRecord(logger_name, level, __file__, 0, "message", None, None)
    return bool(logging.getLogger(logger_name).filter(record))


def test_drop_below_keeps_the_level_and_above():
    drop_below("rsrl.test.noisy", logging.WARNING)
    assert not passes("rsrl.test.noisy", logging.INFO)
    assert passes("rsrl.test.noisy", logging.WARNING) and passes("rsrl.test.noisy", logging.ERROR)


def test_ray_train_loggers_are_the_ones_quieted():
    from ray.train.v2._internal.execution import context
    from ray.train.v2._internal.execution.controller import placement_group_cleaner

    quiet_ray_internals()
    report_logger = context.logger.name  # named by its file path
    assert report_logger == context.__file__
    assert not passes(report_logger, logging.INFO) and passes(report_logger, logging.WARNING)
    cleaner = placement_group_cleaner.logger.name
    assert not passes(cleaner, logging.WARNING) and passes(cleaner, logging.ERROR)


def test_vllm_loggers_quieted_name_existing_modules():
    # vLLM is not imported here: the rollout engine must be the first to import it.
    root = Path(importlib.util.find_spec("vllm").origin).parent
    for name in EXPECTED_WARNINGS:
        assert (root / Path(*name.split(".")[1:])).with_suffix(".py").exists(), name
