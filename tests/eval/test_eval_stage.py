"""The eval stage end to end on real Ray: two tiny checkpoints, held-out text, and a tiny
suite sampled through the rollout actors (transformers engine) and scored by a plugin
verifier whose verdict varies from sample to sample, so every metric is non-trivial."""

import json
from pathlib import Path
from statistics import fmean as mean

import pyarrow.parquet as pq
import pytest

from rsrl.eval.metrics import pass_at_k
from rsrl.eval.results import read_eval_metrics
from rsrl.eval.uncertainty import standard_error
from rsrl.pipeline.registry import StageContext, resolve_stage_fn
from rsrl.spec import load_spec
from tests.eval.conftest import eval_stage_context

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"
PLUGIN = '''
from rsrl.verifiers import register_verifier

@register_verifier("has_letter")
def has_letter(prompt, completion, answer, **fields):
    """Correct when the completion contains the answer's letter (random text: sometimes)."""
    return float(answer in completion)
'''
PROMPTS = [
    {"question": "Say something with an e.", "letter": "e"},
    {"question": "Say something with a t.", "letter": "t"},
    {"question": "Say something with a q.", "letter": "q"},
]
N, KS = 6, [1, 2, 6]


@pytest.fixture
def eval_context(tmp_path, tokenizer_stage) -> StageContext:
    plugin = tmp_path / "letters.py"
    plugin.write_text(PLUGIN)
    suite_file = tmp_path / "suite.jsonl"
    suite_file.write_text("".join(json.dumps(p) + "\n" for p in PROMPTS))
    suite = {
        "name": "letters",
        "verifier": {"name": "has_letter"},
        "n_samples": N,
        "k": KS,
        "data": {"path": str(suite_file), "prompt_field": "question", "answer_field": "letter"},
        "temperature": 1.0,
        "max_new_tokens": 8,
    }
    spec = load_spec(
        QUICKSTART,
        [
            f"workdir={tmp_path / 'run'}",
            "stages.midtrain=null",
            f"plugins=[{plugin}]",
            f"eval.suites=[{json.dumps(suite)}]",
            "eval.heldout_text.tokens=512",
            "rl.rollout.engine=hf",
            "rl.rollout.actors=1",
        ],
    )
    return eval_stage_context(spec, tokenizer_stage)


def test_eval_stage_writes_consistent_metrics(ray_session, eval_context):
    result = resolve_stage_fn("eval")(eval_context)
    metrics = read_eval_metrics(eval_context.out_dir)
    assert metrics["model"] == "rl"

    assert set(metrics["heldout"]) == {"pretrain", "rl"}
    for scores in metrics["heldout"].values():
        assert scores["tokens"] > 0 and scores["k"] == 100 and scores["perplexity"] > 1
    assert metrics["heldout"]["pretrain"]["nll"] != metrics["heldout"]["rl"]["nll"]

    suite = metrics["suites"]["letters"]
    problems = pq.read_table(eval_context.out_dir / suite["problems_file"]).to_pylist()
    assert [p["prompt"] for p in problems] == [p["question"] for p in PROMPTS]
    for p in problems:
        assert len(p["completions"]) == len(p["scores"]) == len(p["lengths"]) == N
        assert p["scores"] == [float(p["answer"] in text) for text in p["completions"]]
        assert p["correct"] == sum(p["scores"])
        assert all(0 < length <= 8 for length in p["lengths"])
    counts = [(N, p["correct"]) for p in problems]
    assert suite["curve"] == pytest.approx(
        [mean([pass_at_k(n, c, k) for n, c in counts]) for k in range(1, N + 1)]
    )
    for k in KS:
        assert suite[f"pass@{k}"] == pytest.approx(suite["curve"][k - 1])
    assert suite[f"avg@{N}"] == pytest.approx(mean([c / N for _, c in counts]))
    for p in problems:  # non-math verifiers vote on the stripped completion itself
        assert p["answers"] == [text.strip() or None for text in p["completions"]]
        assert p["cons"] == float(p["majority_answer"] == p["answer"])
    assert suite[f"cons@{N}"] == pytest.approx(mean([p["cons"] for p in problems]))

    assert result["metrics"] == "metrics.json"
    assert result["eval.letters.pass@2"] == suite["pass@2"]
    assert result["eval.heldout.rl.entropy"] == metrics["heldout"]["rl"]["entropy"]

    # Before RL: the model RL started from, on the same problems with the same seeds; the
    # gain is the paired difference of the two per-problem tables.
    assert metrics["pre_rl"]["model"] == "pretrain"
    before = metrics["pre_rl"]["suites"]["letters"]
    assert before["problems_file"] == "suites/pretrain/letters.parquet"
    assert suite["problems_file"] == "suites/rl/letters.parquet"
    pre_problems = pq.read_table(eval_context.out_dir / before["problems_file"]).to_pylist()
    assert [p["prompt"] for p in pre_problems] == [p["prompt"] for p in problems]
    # Different weights (seed 0 vs 1) sample different text: the weight swap took effect.
    assert [p["completions"] for p in pre_problems] != [p["completions"] for p in problems]
    gain = metrics["rl_gain"]["letters"][f"avg@{N}"]
    diffs = [p["avg"] - q["avg"] for p, q in zip(problems, pre_problems)]
    assert gain["mean"] == pytest.approx(mean(diffs))
    assert gain["se"] == pytest.approx(standard_error(diffs))
    assert result[f"eval.rl_gain.letters.avg@{N}"] == gain["mean"]
    assert result[f"eval.rl_gain.letters.avg@{N}_se"] == gain["se"]
    assert result[f"eval.pre_rl.letters.avg@{N}"] == before[f"avg@{N}"]
    assert metrics["rl_curve"] == {}  # rl.eval_every is 0 in this spec
