"""A real sweep on Ray Tune with two seeds: trials of one seed share the stage cache and
pre-train once; arms aggregate over seeds and are compared with the baseline arm."""

import json
import shutil
from pathlib import Path

from rsrl.sweep.run import run_sweep

HERE = Path(__file__).parent


def manifests(workdir: Path, stage: str) -> dict[Path, str]:
    return {
        p: json.loads(p.read_text())["finished_at"]
        for p in workdir.glob(f"{stage}-*/manifest.json")
    }


def test_two_trials_share_one_pretraining_and_a_rerun_does_nothing(
    ray_session, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # a relative workdir, as in the specs: trials must share it
    spec = str(HERE / "tiny-sweep.yaml")
    overrides = [
        "workdir=sweep-runs",
        "sweep.seeds=2",
        "sweep.baseline={eval.heldout_text.tokens: 1024}",
    ]
    result = run_sweep(spec, overrides)
    tmp_path = tmp_path / "sweep-runs"

    assert sorted((r["eval.heldout_text.tokens"], r["seed"]) for r in result.rows) == [
        (1024, 0),
        (1024, 1),
        (2048, 0),
        (2048, 1),
    ]
    pretrain = manifests(tmp_path, "pretrain")
    assert len(pretrain) == 2  # one pre-training per seed, shared by that seed's trials
    assert len(manifests(tmp_path, "eval")) == 4
    for seed in (0, 1):
        dirs = {r["stage_dirs"]["pretrain"] for r in result.rows if r["seed"] == seed}
        assert len(dirs) == 1
    metric = "eval.heldout.pretrain.perplexity"
    by_seed = {(r["eval.heldout_text.tokens"], r["seed"]): r[metric] for r in result.rows}
    assert by_seed[(1024, 0)] != by_seed[(1024, 1)]  # the seed changed the pre-training
    arms = {a["eval.heldout_text.tokens"]: a for a in result.arms}
    assert arms[1024]["seeds"] == 2
    assert arms[2048][metric] == (by_seed[(2048, 0)] + by_seed[(2048, 1)]) / 2
    assert arms[1024]["vs_baseline"]["reading"] == "baseline"
    diff = arms[2048]["vs_baseline"]
    diffs = [by_seed[(2048, s)] - by_seed[(1024, s)] for s in (0, 1)]
    assert diff["mean"] == (diffs[0] + diffs[1]) / 2 and diff["low"] <= diff["mean"] <= diff["high"]
    assert result.best[metric] == min(a[metric] for a in result.arms)
    assert result.report is not None and result.report.exists()

    again = run_sweep(spec, overrides)  # restored from Tune's state: nothing runs
    assert len(again.rows) == 4
    assert manifests(tmp_path, "pretrain") == pretrain
    assert len(manifests(tmp_path, "eval")) == 4

    # Another spec: Tune would restore the old trials' results, so they move aside and the
    # trials run again, every stage from the cache.
    changed = run_sweep(spec, [*overrides, "sweep.show=[eval.heldout.pretrain.entropy]"])
    assert (tmp_path / "sweeps" / "tiny-sweep.stale-1" / "tuner.pkl").exists()
    assert len(changed.rows) == 4 and "eval.heldout.pretrain.entropy_se" in changed.arms[0]
    assert manifests(tmp_path, "pretrain") == pretrain
    assert len(manifests(tmp_path, "eval")) == 4

    # Stopped part-way: Tune's state gone and one trial's eval unfinished. The rerun redoes
    # only that eval; every finished stage of every trial comes from the stage cache.
    evals = manifests(tmp_path, "eval")
    shutil.rmtree(tmp_path / "sweeps")
    unfinished = next(iter(evals)).parent
    shutil.rmtree(unfinished)
    resumed = run_sweep(spec, overrides)
    assert len(resumed.rows) == 4
    assert manifests(tmp_path, "pretrain") == pretrain
    after = manifests(tmp_path, "eval")
    assert set(after) == set(evals)
    assert {p: t for p, t in after.items() if p.parent != unfinished} == {
        p: t for p, t in evals.items() if p.parent != unfinished
    }
