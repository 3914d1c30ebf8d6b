"""A sweep resumes Tune's experiment only when it started from the same resolved spec: Tune
would restore finished trials with the results of whatever spec they ran."""

from pathlib import Path

from rsrl.spec import load_spec
from rsrl.sweep.run import SPEC_FINGERPRINT_FILE, _resumable, spec_fingerprint

SPEC = Path(__file__).parents[1] / "e2e" / "tiny-sweep.yaml"


def experiment(path: Path, fingerprint: str | None) -> Path:
    path.mkdir(parents=True)
    (path / "tuner.pkl").write_bytes(b"Tune's state")  # what Tuner.can_restore looks for
    if fingerprint is not None:
        (path / SPEC_FINGERPRINT_FILE).write_text(fingerprint)
    return path


def test_the_same_spec_resumes(tmp_path):
    spec = load_spec(SPEC)
    path = experiment(tmp_path / "tiny-sweep", spec_fingerprint(spec))
    assert _resumable(path, spec)
    assert not _resumable(tmp_path / "never-started", spec)


def test_an_experiment_from_before_fingerprints_resumes(tmp_path):
    assert _resumable(experiment(tmp_path / "tiny-sweep", None), load_spec(SPEC))


def test_a_changed_spec_moves_the_old_trials_aside_and_starts_over(tmp_path, capsys):
    old = load_spec(SPEC)
    new = load_spec(SPEC, ["eval.heldout_text.tokens=4096"])
    assert spec_fingerprint(new) != spec_fingerprint(old)
    path = experiment(tmp_path / "tiny-sweep", spec_fingerprint(old))
    experiment(tmp_path / "tiny-sweep.stale-1", "older still")

    assert not _resumable(path, new)
    assert not path.exists()
    moved = tmp_path / "tiny-sweep.stale-2"
    assert (moved / "tuner.pkl").read_bytes() == b"Tune's state"  # kept, never deleted
    assert str(moved) in capsys.readouterr().out
