"""The README's main command, end to end through the CLI (fewer steps through overrides),
then a second apply that finds every stage cached."""

import json
import math
import re
import time

import pytest

from rsrl.runtime import Timings
from tests.e2e.quickstart import apply_quickstart, stage_dir, stage_statuses


def test_every_stage_leaves_its_outputs(quickstart_run):
    from transformers import AutoModelForCausalLM

    workdir, result = quickstart_run
    assert (stage_dir(workdir, "tokenizer") / "tokenizer" / "tokenizer.json").exists()
    for data in ("data-pretrain", "data-midtrain"):
        assert (stage_dir(workdir, data) / "meta.json").exists()
    for model in ("pretrain", "midtrain", "rl"):
        hf = stage_dir(workdir, model) / "hf"
        assert AutoModelForCausalLM.from_pretrained(hf).config.vocab_size == 2048
        records = [
            json.loads(line)
            for line in (stage_dir(workdir, model) / "steps.jsonl").read_text().splitlines()
        ]
        assert records and records[-1]["step"] == records[-1]["total_steps"]
        # ZeRO-0 (the quickstart's), where DeepSpeed keeps no gradient norm of its own
        norms = [r["grad_norm"] for r in records if "grad_norm" in r]  # RL: steps it updated
        assert norms and all(math.isfinite(n) and n > 0 for n in norms), (model, norms)
    rl = [
        json.loads(row)
        for row in (stage_dir(workdir, "rl") / "steps.jsonl").read_text().splitlines()
    ]
    for name in (
        "reward_mean",
        "accuracy",
        "dropped_groups",
        "entropy",
        "clip_fraction",
        "rollout_tokens_per_s",
        "sync_seconds",
    ):
        assert name in rl[-1], name
    # The trainer (1 CPU) and its vLLM actor (1 CPU) take turns: it updates on both cores.
    assert Timings(stage_dir(workdir, "rl")).read()["threads"] == 2
    # vLLM's sampled-token logprobs and the trainer's recompute agree (fp32, temperature 1).
    assert all(r["logprob_mismatch"] < 1e-3 for r in rl if "logprob_mismatch" in r)
    pretrain = [
        json.loads(row)
        for row in (stage_dir(workdir, "pretrain") / "steps.jsonl").read_text().splitlines()
    ]
    assert pretrain[-1]["nll"] < pretrain[0]["nll"]
    metrics = json.loads((stage_dir(workdir, "eval") / "metrics.json").read_text())
    count = metrics["suites"]["count"]
    assert {"avg@16", "cons@16", "pass@1", "pass@4", "avg@16_se", "pass@4_ci"} <= set(count)
    assert 0.0 <= count["pass@1"] <= count["pass@4"] <= 1.0
    # Before and after RL on the same problems; the RL curve at step 0 and the last step.
    assert metrics["pre_rl"]["model"] == "midtrain" and metrics["model"] == "rl"
    assert metrics["pre_rl"]["suites"]["count"]["problems"] == count["problems"]
    gain = metrics["rl_gain"]["count"]["avg@16"]
    assert gain["mean"] == pytest.approx(
        count["avg@16"] - metrics["pre_rl"]["suites"]["count"]["avg@16"]
    )
    assert gain["se"] >= 0
    curve = metrics["rl_curve"]["count"]
    assert [row["step"] for row in curve] == [0, 10, 20]  # eval_every 10 over 20 steps
    assert all(row["problems"] == 16 and "avg@16_se" in row for row in curve)
    assert set(metrics["heldout"]) == {"pretrain", "midtrain", "rl"}
    report = stage_dir(workdir, "report") / "report.html"
    assert f"report: {report}" in result.stdout
    assert report.exists() and list(report.parent.glob("*.png"))


# What the libraries print: Ray's worker prefix "(RolloutWorker pid=8725)", log levels, names.
THIRD_PARTY = re.compile(r"pid=\d+|\bINFO\b|\bWARNING\b|vllm|deepspeed|ray data", re.IGNORECASE)


def test_a_cold_apply_prints_a_screenful_and_leaves_the_details_in_logs(quickstart_run):
    """Redirected, a cold apply prints rsrl's own lines only (no vLLM, Ray, Ray Data or
    DeepSpeed line among them), at most 40 besides its progress lines, ends with the RL
    gain and the report's path, and leaves each stage's third-party output in its logs/."""
    workdir, result = quickstart_run
    printed = (result.stdout + result.stderr).splitlines()
    assert not [line for line in printed if THIRD_PARTY.search(line)], printed
    # Progress lines come at most one per stage every 30 s: how many depends on the
    # machine's speed, the rest does not.
    assert len([line for line in printed if ": step " not in line]) <= 40, printed
    out = result.stdout.splitlines()
    assert out[-1].startswith("report: ")
    gains = out.index("RL gain (after - before RL, paired by problem, ± standard error):")
    assert out[gains + 1].startswith("  count avg@16")
    assert out[-2].startswith("held-out entropy / perplexity by checkpoint: pretrain ")
    for stage in ("pretrain", "midtrain", "rl"):
        assert list((stage_dir(workdir, stage) / "logs").glob("*.log")), stage
    rl_logs = " ".join(p.read_text() for p in (stage_dir(workdir, "rl") / "logs").glob("*.log"))
    assert "vllm" in rl_logs.lower()  # the engine's own lines, kept
    assert "Started a local Ray instance" in (workdir / "apply.log").read_text()


def test_second_apply_is_all_cached_and_quick(quickstart_run):
    workdir, _ = quickstart_run
    start = time.time()
    again = apply_quickstart(workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    statuses = stage_statuses(again.stdout)
    assert len(statuses) == 8 and set(statuses.values()) == {"cached"}, again.stdout
    assert time.time() - start < 60
