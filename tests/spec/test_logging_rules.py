"""`logging:` values the spec must refuse before anything runs (reachability is apply's)."""

from pathlib import Path

import pytest

from rsrl.spec import SpecError, load_spec

BASE = Path(__file__).parent / "base.yaml"


def test_logging_is_off_by_default():
    spec = load_spec(BASE)
    assert spec.logging.wandb is None and spec.logging.mlflow is None
    assert spec.logging.on_error == "fail"


def test_unknown_wandb_mode_and_on_error_are_named():
    with pytest.raises(SpecError) as err:
        load_spec(BASE, ["logging.wandb.mode=offlne", "logging.on_error=ignore"])
    problems = "\n".join(err.value.problems)
    assert "logging.wandb.mode: unknown value 'offlne' (did you mean 'offline'?)" in problems
    assert "logging.on_error: unknown value 'ignore'; allowed: fail, warn" in problems


def test_blank_names_are_refused():
    with pytest.raises(SpecError, match=r"logging\.mlflow\.experiment: must not be empty"):
        load_spec(BASE, ["logging.mlflow.experiment=' '"])


def test_unknown_tracker_key_is_refused():
    with pytest.raises(SpecError, match="logging.mlflow"):
        load_spec(BASE, ["logging.mlflow.tracking_url=http://x"])
