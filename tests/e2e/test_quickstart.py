"""The README's main command, end to end through the CLI (fewer steps through overrides),
then a second apply that finds every stage cached."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUICK = ["stages.pretrain.tokens=120000", "stages.midtrain.tokens=40000",
         "stages.midtrain.seq_len=256", "rl.steps=2", "rl.prompts_per_step=4",
         "rl.group_size=4", "rl.rollout.max_new_tokens=32", "rl.dynamic_sampling=false",
         "rl.mini_batches=2",  # two updates per step: old log-probs, the clip at work
         "eval.suites.0.n_samples=4",
         "eval.suites.0.k=[1,4]", "eval.suites.0.data.limit=16",
         "eval.suites.0.max_new_tokens=32", "eval.heldout_text.tokens=4096"]


def apply(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsrl.cli", "apply",
                           str(REPO / "specs" / "quickstart.yaml"), f"workdir={workdir}", *QUICK],
                          capture_output=True, text=True, timeout=1200)


def stage_dir(workdir: Path, name: str) -> Path:
    (found,) = workdir.glob(f"{name}-*/")
    return found


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quickstart")
    result = apply(workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return workdir, result


def test_every_stage_leaves_its_outputs(finished):
    from transformers import AutoModelForCausalLM

    workdir, result = finished
    assert (stage_dir(workdir, "tokenizer") / "tokenizer" / "tokenizer.json").exists()
    for data in ("data-pretrain", "data-midtrain"):
        assert (stage_dir(workdir, data) / "meta.json").exists()
    for model in ("pretrain", "midtrain", "rl"):
        hf = stage_dir(workdir, model) / "hf"
        assert AutoModelForCausalLM.from_pretrained(hf).config.vocab_size == 2048
        records = [json.loads(line) for line in
                   (stage_dir(workdir, model) / "metrics.jsonl").read_text().splitlines()]
        assert records and records[-1]["step"] == records[-1]["total_steps"]
    rl = [json.loads(l) for l in (stage_dir(workdir, "rl") / "metrics.jsonl")
          .read_text().splitlines()]
    for name in ("reward_mean", "accuracy", "dropped_groups", "entropy", "clip_fraction",
                 "rollout_tokens_per_s", "sync_seconds"):
        assert name in rl[-1], name
    # vLLM's sampled-token logprobs and the trainer's recompute agree (fp32, temperature 1).
    assert all(r["logprob_mismatch"] < 1e-3 for r in rl if "logprob_mismatch" in r)
    pretrain = [json.loads(l) for l in (stage_dir(workdir, "pretrain") / "metrics.jsonl")
                .read_text().splitlines()]
    assert pretrain[-1]["nll"] < pretrain[0]["nll"]
    metrics = json.loads((stage_dir(workdir, "eval") / "metrics.json").read_text())
    arith = metrics["suites"]["arith"]
    assert {"avg@4", "cons@4", "pass@1", "pass@4"} <= set(arith)
    assert 0.0 <= arith["pass@1"] <= arith["pass@4"] <= 1.0
    assert set(metrics["heldout"]) == {"pretrain", "midtrain", "rl"}
    report = stage_dir(workdir, "report") / "report.html"
    assert f"report: {report}" in result.stdout
    assert report.exists() and list(report.parent.glob("*.png"))


def test_second_apply_is_all_cached_and_quick(finished):
    workdir, _ = finished
    start = time.time()
    again = apply(workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = [line for line in again.stdout.split("done\n", 1)[1].splitlines()[1:]
            if line.strip() and not line.startswith("report:")]
    assert len(rows) == 8 and all("cached" in line for line in rows), again.stdout
    assert time.time() - start < 60
