"""A real sweep on Ray Tune: two trials share the stage cache and pre-train once."""

import json
from pathlib import Path

from rsrl.sweep import run_sweep

HERE = Path(__file__).parent


def manifests(workdir: Path, stage: str) -> dict[Path, str]:
    return {p: json.loads(p.read_text())["finished_at"]
            for p in workdir.glob(f"{stage}-*/manifest.json")}


def test_two_trials_share_one_pretraining_and_a_rerun_does_nothing(ray_session, tmp_path,
                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative workdir, as in the specs: trials must share it
    spec = str(HERE / "tiny-sweep.yaml")
    overrides = ["workdir=sweep-runs"]
    result = run_sweep(spec, overrides)
    tmp_path = tmp_path / "sweep-runs"

    assert sorted(r["eval.heldout_text.tokens"] for r in result.rows) == [1024, 2048]
    pretrain = manifests(tmp_path, "pretrain")
    assert len(pretrain) == 1  # both trials used the one pre-training
    assert len(manifests(tmp_path, "eval")) == 2
    dirs = {r["stage_dirs"]["pretrain"] for r in result.rows}
    assert len(dirs) == 1
    perplexities = [r["eval.heldout.pretrain.perplexity"] for r in result.rows]
    assert result.best["eval.heldout.pretrain.perplexity"] == min(perplexities)
    assert result.report is not None and result.report.exists()

    again = run_sweep(spec, overrides)  # restored from Tune's state: nothing runs
    assert len(again.rows) == 2
    assert manifests(tmp_path, "pretrain") == pretrain
    assert len(manifests(tmp_path, "eval")) == 2
