"""GRPO raises the quickstart's eval score: the mid-trained and the RL model sampled on the
same 50 held-out counting problems (eval-arith, 16 samples each, temperature 1), the gain
paired by problem, as the product reports it.

The quickstart run (tests/e2e/conftest.py) is the learning run: 20 GRPO steps of 8 prompts
x 8 samples on rl-arith's counting problems, after a short pre-training. Measured on 2 CPU
cores: avg@16 0.088 -> 0.214, gain 0.126 (se 0.015, z 8.5); RL curve 0.12, 0.25, 0.27 at
steps 0, 10, 20 (16 problems). The rollout engine is vLLM; the hf engine samples the same
distribution (tests/rl/test_rollout.py), so it is not trained a second time here.
"""

import json

from tests.e2e.quickstart import stage_dir

MIN_RISE = 0.04  # the rise seen is ~0.13; this leaves ~5 standard errors of the difference


def eval_metrics(workdir) -> dict:
    return json.loads((stage_dir(workdir, "eval") / "metrics.json").read_text())


def test_grpo_raises_the_held_out_score(quickstart_run):
    metrics = eval_metrics(quickstart_run[0])
    gain = metrics["rl_gain"]["count"]["avg@16"]
    print(f"avg@16 gain {gain['mean']:.3f} (se {gain['se']:.3f})")
    assert gain["mean"] >= MIN_RISE and gain["z"] > 3


def test_rl_curve_rises_from_its_start(quickstart_run):
    curve = eval_metrics(quickstart_run[0])["rl_curve"]["count"]
    first, last = curve[0], curve[-1]
    assert last["avg@16"] - first["avg@16"] > 2 * (first["avg@16_se"] + last["avg@16_se"])
