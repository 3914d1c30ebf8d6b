"""The eval stage: held-out diagnostics for every checkpoint, then the suites on the last one.

1. Held-out text (if `eval.heldout_text`): perplexity, entropies, top-k and tail mass of
   every checkpoint the pipeline produced (pretrain, midtrain, rl), on the same token rows.
2. Each suite: `n_samples` completions per prompt from the last checkpoint through the
   rollout actors (engine of `rl.rollout`, vLLM without RL), scored by the suite's verifier;
   per-problem results in `suites/<name>.parquet`.

Everything lands in `metrics.json` (layout in `rsrl.eval.results`); the stage returns its
flat view, so `rsrl apply` and sweeps see `eval.arith.pass@4` in the manifest too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Mapping

import ray

from rsrl.eval.results import HELDOUT, METRICS_FILE, flat_metrics
from rsrl.files import write_json_atomic
from rsrl.pipeline.plan import MODEL_STAGES
from rsrl.pipeline.registry import StageContext
from rsrl.spec.schema import HeldoutSpec, RolloutSpec, Spec

log = logging.getLogger("rsrl")

DEFAULT_ENGINE = "vllm"


def run_eval_stage(ctx: StageContext) -> dict:
    spec = ctx.spec
    checkpoints = model_checkpoints(ctx.inputs)
    bundle = ctx.stage.resources.bundles[0]
    metrics: dict = {"model": list(checkpoints)[-1], "suites": {}, HELDOUT: {}}
    if spec.eval.heldout_text is not None:
        metrics[HELDOUT] = ray.get(score_heldout.options(
            num_cpus=bundle.get("CPU", 1), num_gpus=bundle.get("GPU", 0)).remote(
            spec.eval.heldout_text, ctx.inputs["tokenizer"], checkpoints, spec.objective.topk.k))
    if spec.eval.suites:
        metrics["suites"] = run_suites(spec, checkpoints[metrics["model"]],
                                       ctx.inputs["tokenizer"], ctx.out_dir)
    write_json_atomic(ctx.out_dir / METRICS_FILE, metrics)
    return {"metrics": METRICS_FILE, **flat_metrics(metrics)}


def model_checkpoints(inputs: Mapping[str, Path]) -> dict[str, Path]:
    """{stage: its HF export} for each model stage among `inputs`, in pipeline order."""
    checkpoints = {s: Path(inputs[s]) / "hf" for s in MODEL_STAGES if s in inputs}
    if not checkpoints:
        raise ValueError(f"the eval stage needs a model stage among its inputs "
                         f"({', '.join(MODEL_STAGES)}), got {', '.join(inputs) or 'none'}")
    return checkpoints


@ray.remote(max_retries=0)
def score_heldout(heldout: HeldoutSpec, tokenizer_stage: Path, checkpoints: dict[str, Path],
                  k: int) -> dict[str, dict]:
    """Runs as a Ray task holding the stage's resources (a GPU when rollouts get one)."""
    from rsrl.eval.heldout import context_length, heldout_rows, score_checkpoint

    seq_len = context_length(list(checkpoints.values()))
    rows = heldout_rows(heldout, tokenizer_stage, seq_len)
    scores = {}
    for stage, model_dir in checkpoints.items():
        scores[stage] = {**score_checkpoint(model_dir, rows, k), "seq_len": rows.shape[1]}
        log.info("eval: held-out %s: perplexity %.3f, entropy %.3f", stage,
                 scores[stage]["perplexity"], scores[stage]["entropy"])
    return scores


def run_suites(spec: Spec, model_dir: Path, tokenizer_stage: Path, out_dir: Path) -> dict:
    """Every suite of `spec.eval` on `model_dir`, sharing one group of rollout actors."""
    from rsrl.data.prompts import read_prompts
    from rsrl.eval.suite import sample_suite, score_problem, summarise_suite, write_problems
    from rsrl.models.tokenizer import load_tokenizer, tokenizer_dir
    from rsrl.rl.rollout.actors import RolloutGroup
    from rsrl.verifiers import load_verifier

    ro = spec.rl.rollout if spec.rl is not None else RolloutSpec(engine=DEFAULT_ENGINE)
    tokenizer = load_tokenizer(tokenizer_stage)
    group = RolloutGroup(ro.engine, model_dir, tokenizer_dir(tokenizer_stage), ro.actors,
                         ro.cpus_per_actor, ro.gpus_per_actor)
    results = {}
    try:
        for suite in spec.eval.suites:
            prompts = read_prompts(suite.data)
            verify = load_verifier(suite.verifier.name, spec.plugins)
            outputs = sample_suite(group, tokenizer, suite, prompts, spec.seed)
            problems = [score_problem(suite, verify, item, completions, i)
                        for i, (item, completions) in enumerate(zip(prompts, outputs))]
            problems_file = f"suites/{re.sub(r'[^A-Za-z0-9_.-]', '_', suite.name)}.parquet"
            write_problems(problems, out_dir / problems_file)
            results[suite.name] = summarise_suite(suite, problems, problems_file)
            log.info("eval: suite %s: %s", suite.name, {k: v for k, v in
                     results[suite.name].items() if k.startswith(("pass@", "avg@", "cons@"))})
    finally:
        group.shutdown()
    return results
