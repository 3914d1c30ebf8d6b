"""Every script in benchmarks/ runs end to end, with its smallest arguments, as a user runs it
(`python benchmarks/X.py ...` in a fresh process), and prints its table or ratio: a change
that breaks a benchmark fails here, not on the day someone reruns it.

The numbers are not checked, only that they are there and make sense (a run this small
measures nothing): each test reads the lines the script prints. Two scripts need a whole
pipeline run (quickstart.py times one, rl_gain.py reads one); a cold run takes minutes, so
they read the run the end-to-end tests make anyway (the session's `quickstart_run`; run
alone, this file makes it first) and write nothing to it. gpu_check.sh needs CUDA: what of
it runs without one is checked here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.e2e.quickstart import QUICK

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
NUMBER = r"[\d,]+(?:\.\d+)?"


def run(script: str, *args: str | Path) -> str:
    """`python benchmarks/SCRIPT ARGS...` from the repository root; its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # its own Ray, always
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def line(pattern: str, out: str) -> re.Match:
    """The first line of `out` that `pattern` matches from its start."""
    found = re.search(pattern, out, re.MULTILINE)
    assert found, f"no line matches {pattern!r} in:\n{out}"
    return found


def num(text: str) -> float:
    return float(text.replace(",", ""))


def test_sweep_tables_check_mode_on_the_committed_results():
    out = run("sweep_tables.py", "--check")
    line(r"^\| paper's direction \| arm \| metric \|", out)
    line(r"^\| beta orders pre-trained entropy \(sharper\) \| beta -0\.25 \| entropy \|", out)
    line(r"^README\.md: up to date$", out)
    line(r"^benchmarks/RESULTS\.md: up to date$", out)


def test_loss_quick_cpu():
    """--quick shapes, one repeat; each row's peak memory in a fresh subprocess."""
    out = run("loss.py", "--quick", "--device", "cpu", "--repeats", "1")
    for case, impl in [
        ("cpu N=256 V=4096 float32", "shaped reference"),
        ("cpu N=1024 V=4096 D=512 float32", "shaped unfused"),
        ("cpu N=1024 V=4096 D=512 float32", "shaped fused linear"),
    ]:
        row = line(rf"^\| {case} \| {impl} \| ({NUMBER}) \| +({NUMBER})x \|", out)
        assert num(row[1]) > 0 and num(row[2]) > 0, row[0]
    assert line(r"^\| cpu N=256 V=4096 float32 \| F\.cross_entropy \| \S+ \| +1\.00x", out)


def test_data_on_a_fifth_of_a_megabyte():
    """The first 0.2 MB of one corpus copy; the script checks both paths' tokens are equal."""
    out = run("data.py", "--mb", "0.2")
    corpus = line(rf"^corpus: 1 jsonl files, 0\.2 MB, ({NUMBER}) tokens", out)
    assert num(corpus[1]) > 10_000
    ratio = line(rf"^ratio Ray Data / single process: ({NUMBER})x", out)
    assert num(ratio[1]) > 0


def test_train_twelve_small_steps():
    """--steps 12 is the least the steady-state median allows; 512-token steps."""
    out = run(
        "train.py", "--steps", "12", "--seq-len", "64", "--batch-tokens", "512", "--cpus", "1"
    )
    row = line(rf"^ +1 +({NUMBER}) +({NUMBER}) +({NUMBER})$", out)
    assert num(row[1]) > 0 and num(row[2]) > 0 and num(row[3]) > 0, row[0]
    line(r"^  model \+ DeepSpeed engine +\d", out)


def test_entropy_order_one_run(tmp_path):
    """One of the four objectives, 2 steps: the pipeline's tokenizer, data, pretrain, eval."""
    out = run("entropy_order.py", "--tokens", "8192", "--workdir", tmp_path, "--runs", "beta=-0.25")
    row = line(rf"^beta=-0\.25 +({NUMBER}) +({NUMBER}) +({NUMBER}) +({NUMBER})$", out)
    perplexity, entropy, _, tail = map(num, row.groups())
    assert perplexity > 1 and entropy > 0 and 0 < tail < 1, row[0]


def test_rollout_one_prompt_and_the_smallest_sync():
    """Both engines on 1 prompt x 2 samples of <= 8 tokens, random weights; then one sync
    of the smallest model through each."""
    out = run(
        "rollout.py",
        "--prompts", "1",
        "--n", "2",
        "--max-new-tokens", "8",
        "--repeats", "1",
        "--train-steps", "0",
        "--sync-shapes", "1",
    )  # fmt: skip
    row = line(rf"^\| 1 x 2 \| {NUMBER} \| ({NUMBER}) \| ({NUMBER}) \| \*\*({NUMBER})x\*\*", out)
    assert all(num(x) > 0 for x in row.groups()), row[0]
    sync = line(rf"^\| 1\.\dM \| 4 \| ({NUMBER}) \| ({NUMBER}) \|$", out)
    assert all(num(x) > 0 for x in sync.groups()), sync[0]


def test_weight_sync_smallest_model_one_actor():
    out = run("weight_sync.py", "--sizes", "1M", "--actors", "1", "--repeats", "1")
    for transport in ("object_store", "collective"):
        row = line(rf"^\| 1M \| {transport} \| ({NUMBER}) \| ({NUMBER}) \|", out)
        assert num(row[1]) > 0 and num(row[2]) > 0, row[0]


def test_quickstart_reports_on_a_finished_run(quickstart_run, tmp_path):
    """--from-run: the script's parsing and report on a real cold apply's output and stage
    directories, and a 3-step plain loop; what it leaves out is making and re-applying the
    run (minutes; tests/e2e/test_quickstart.py checks both)."""
    workdir, result = quickstart_run
    log = tmp_path / "cold-apply.log"
    log.write_text(result.stdout + result.stderr)
    out = run("quickstart.py", "--from-run", workdir, log, "--plain-steps", "3", *QUICK)
    line(rf"^quickstart from an empty workdir: read from {re.escape(str(log))}$", out)
    for stage in ("pretrain", "midtrain", "rl"):  # wall, then the five parts
        line(rf"^{stage} +{NUMBER}" + rf" +-?{NUMBER}" * 5 + "$", out)
    line(rf"^RL per step: rollout {NUMBER} s, update {NUMBER} s, sync {NUMBER} s", out)
    line(r"^RL gain on count: avg@16 ", out)
    ratio = line(rf"^pre-training: {NUMBER} tokens/s in the stage, .* \(ratio ({NUMBER})\)", out)
    assert num(ratio[1]) > 0


def test_rl_gain_on_a_finished_run(quickstart_run):
    """4 fresh problems x 2 samples, before and after RL, in one vLLM actor."""
    workdir, _ = quickstart_run
    out = run(
        "rl_gain.py",
        REPO / "specs" / "quickstart.yaml",
        f"workdir={workdir}",
        *QUICK,
        "--problems", "4",
        "--samples", "2",
    )  # fmt: skip
    line(r"^4 fresh 'count' problems x 2 samples, temperature 1 \(midtrain-\w+ -> rl-\w+\)", out)
    for when in ("before", "after"):
        mean = line(rf"^{when} RL +avg@2 ({NUMBER}) ± {NUMBER}$", out)
        assert 0 <= num(mean[1]) <= 1
    line(rf"^difference [+-]{NUMBER} ± {NUMBER} \(paired by problem\), z = ", out)


def test_rl_async_two_variants_from_a_finished_run(quickstart_run, tmp_path):
    """sync and async, 2 RL steps of 2 prompts x 2 samples each, on a copy of the quickstart
    run's stages (the variants' RL and eval stages are new; the others come from the cache)."""
    workdir, _ = quickstart_run
    copy = tmp_path / "work"
    shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns("rl-*", "eval-*", "report-*"))
    # No dynamic sampling: a refill round is sampled with the current weights, and at 2
    # samples a group most often has one reward, so the async step's staleness would vary.
    small = ["rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.mini_batches=1"]
    small += ["rl.dynamic_sampling=false"]
    small += ["eval.suites.0.n_samples=2", "eval.suites.0.k=[1]"]
    out = run("rl_async.py", *QUICK, *small, "--workdir", copy, "--variants", "sync", "async")
    line(r"^\| variant \| RL steps/s \| vs sync \| mismatch_kl \| is_capped_fraction \|", out)
    # The last cells: steps per staleness_max (0/1/..), then the RL gain.
    sync = line(rf"^\| sync \| ({NUMBER}) \| 1\.00x \| .+ \| 2 \| [+-]{NUMBER} ± {NUMBER} \|$", out)
    async_ = line(rf"^\| async \| ({NUMBER}) \| {NUMBER}x \| .+ \| 1/1 \| [+-]{NUMBER} ± ", out)
    assert num(sync[1]) > 0 and num(async_[1]) > 0


GPU_CHECK = BENCHMARKS / "gpu_check.sh"


def test_gpu_check_parses_and_names_files_that_exist():
    """Without a GPU, gpu_check.sh can only be read: its syntax, and the paths it runs."""
    subprocess.run(["bash", "-n", str(GPU_CHECK)], check=True)
    named = set(re.findall(r"\b(?:tests|benchmarks)/[\w/.-]*\w", GPU_CHECK.read_text()))
    assert {"tests/objective", "benchmarks/loss.py"} <= named
    assert all((REPO / path).exists() for path in named), named
    assert (REPO / "tests" / "objective" / "test_cuda.py").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA it would run the whole check")
def test_gpu_check_stops_at_its_device_check_without_cuda(tmp_path):
    """No GPU: it stops at its first python step, before the tests and the benchmark."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(
        ["bash", str(GPU_CHECK)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OUT": str(tmp_path), "PATH": path},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(r"CUDA|NVIDIA", result.stderr), result.stderr
    assert not list(tmp_path.iterdir())  # neither objective_tests.txt nor loss_benchmark.txt


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA it measures the GPU rows")
def test_gpu_checks_loss_step_skips_cleanly_without_cuda():
    """gpu_check.sh's benchmark step, `loss.py --device cuda`, has no row to run on CPU."""
    out = run("loss.py", "--device", "cuda", "--repeats", "1")
    line(r"^\| case \| impl \| time ms \|", out)
    assert "| cuda N=" not in out and "| cpu N=" not in out


def test_moe_routing_one_variant_on_the_quickstarts_data(quickstart_run, tmp_path):
    """bias with routing replay, on the MoE quickstart at the e2e tests' sizes (its tokenizer
    and data stages are the quickstart run's, copied: the MoE stages run, small)."""
    workdir, _ = quickstart_run
    copy = tmp_path / "work"
    shutil.copytree(
        workdir,
        copy,
        ignore=shutil.ignore_patterns("pretrain-*", "midtrain-*", "rl-*", "eval-*", "report-*"),
    )
    small = ["stages.pretrain.tokens=120000", "stages.midtrain.tokens=40000"]
    small += ["stages.midtrain.seq_len=256", "eval.heldout_text.tokens=4096"]
    small += ["rl.steps=2", "rl.prompts_per_step=2", "rl.group_size=2", "rl.dynamic_sampling=false"]
    small += ["eval.suites.0.n_samples=2", "eval.suites.0.k=[1]", "eval.suites.0.data.limit=8"]
    out = run("moe_routing.py", *small, "--workdir", copy, "--variants", "bias-replay")
    line(
        r"^\| variant \| pretrain MaxVio \(worst layer\) \| pretrain load entropy \(lowest\) \|",
        out,
    )
    row = line(
        rf"^\| bias-replay \| ({NUMBER}) \| ({NUMBER}) \| ({NUMBER}) \| 1\.0000 \| .+ \| "
        rf"[+-]{NUMBER} ± {NUMBER} \|$",
        out,
    )
    assert 0 <= num(row[1]) <= 3 and 0 < num(row[2]) <= 1 and 0 < num(row[3]) <= 1
