"""The eval stage: held-out diagnostics for every checkpoint, the suites before and after RL.

1. Held-out text (if `eval.heldout_text`): perplexity, entropies, top-k and tail mass of
   every checkpoint the pipeline produced (pretrain, midtrain, rl), on the same token rows.
2. Each suite: `n_samples` completions per prompt through the rollout actors (engine of
   `rl.rollout`, vLLM without RL), scored by the suite's verifier, on the last checkpoint
   and, when the run has RL, on the model RL started from: same problems, same seeds, so
   the RL gain is a paired difference per problem. Per-problem results in
   `suites/<checkpoint>/<name>.parquet`.
3. The RL curve: the suites' subset that the rl stage scored every `rl.eval_every` steps.
4. lm-evaluation-harness (if `eval.harness`): its tasks on each named checkpoint's export.
   A task that fails is reported after metrics.json holds everything else.

Everything lands in `metrics.json` (layout in `rsrl.eval.results`); the stage returns its
flat view, so `rsrl apply` and sweeps see `eval.arith.pass@4` in the manifest too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ray

from rsrl.data.config import HeldoutSpec
from rsrl.data.errors import DataError
from rsrl.data.packed import META as DATA_META
from rsrl.eval.config import HarnessSpec
from rsrl.eval.results import (
    HARNESS,
    HARNESS_ERRORS,
    HELDOUT,
    HELDOUT_OVERLAP,
    PRE_RL,
    RL_CURVE,
    RL_GAIN,
    flat_metrics,
)
from rsrl.eval.suite import SuiteResult, run_suite
from rsrl.eval.uncertainty import paired_difference
from rsrl.files import read_jsonl, write_json_atomic
from rsrl.layout import EVAL_METRICS, HF_EXPORT, MODEL_STAGES, RL_CURVE_ROWS
from rsrl.pipeline.registry import StageContext
from rsrl.rl.rollout.config import RolloutSpec
from rsrl.spec.schema import Spec, eval_section

log = logging.getLogger("rsrl")


def run_eval_stage(ctx: StageContext) -> dict:
    spec = ctx.spec
    checkpoints = model_checkpoints(ctx.inputs)
    bundle = ctx.stage.resources.bundles[0]
    metrics: dict = {"model": list(checkpoints)[-1], "suites": {}, HELDOUT: {}}
    heldout = harness = None  # each scored in its own task, beside the rollout actors
    ev = eval_section(spec)
    task_resources = {"num_cpus": bundle.get("CPU", 1), "num_gpus": bundle.get("GPU", 0)}
    if ev.heldout_text is not None:
        heldout = score_heldout.options(**task_resources).remote(
            ev.heldout_text, ctx.inputs["tokenizer"], checkpoints, spec.objective.topk.k
        )
    if ev.harness is not None:
        named: dict[str, Path] = {
            c: d for c, d in checkpoints.items() if c in ev.harness.checkpoints
        }
        harness = score_harness.options(**task_resources).remote(ev.harness, named)
    if ev.suites:
        sampled = suite_checkpoints(checkpoints)
        by_checkpoint = run_suites(
            spec, sampled, ctx.inputs["tokenizer"], ctx.out_dir, ctx.rollout_pool
        )
        metrics["suites"] = {name: r.summary for name, r in by_checkpoint[metrics["model"]].items()}
        if len(sampled) > 1:  # before and after RL, on the same problems and seeds
            pre_rl = next(iter(sampled))
            before = by_checkpoint[pre_rl]
            metrics[PRE_RL] = {
                "model": pre_rl,
                "suites": {name: r.summary for name, r in before.items()},
            }
            metrics[RL_GAIN] = {
                name: rl_gain(before[name], after)
                for name, after in by_checkpoint[metrics["model"]].items()
            }
    if heldout is not None:
        metrics[HELDOUT] = ray.get(heldout)
        metrics[HELDOUT_OVERLAP] = heldout_overlaps(ctx.inputs)
    if "rl" in ctx.inputs:
        metrics[RL_CURVE] = read_rl_curve(ctx.inputs["rl"])
    if harness is not None:
        metrics[HARNESS], errors = ray.get(harness)
        if errors:
            metrics[HARNESS_ERRORS] = errors
    write_json_atomic(ctx.out_dir / EVAL_METRICS, metrics)
    if metrics.get(HARNESS_ERRORS):
        raise DataError(
            [
                f"eval.harness.tasks: task '{task}' failed on checkpoint '{checkpoint}': {why}"
                for checkpoint, failed in metrics[HARNESS_ERRORS].items()
                for task, why in failed.items()
            ]
            + [f"every other result is in {ctx.out_dir / EVAL_METRICS}"]
        )
    return {"metrics": EVAL_METRICS, **flat_metrics(metrics)}


def model_checkpoints(inputs: Mapping[str, Path]) -> dict[str, Path]:
    """{stage: its HF export} for each model stage among `inputs`, in pipeline order."""
    checkpoints = {s: Path(inputs[s]) / HF_EXPORT for s in MODEL_STAGES if s in inputs}
    if not checkpoints:
        raise ValueError(
            f"the eval stage needs a model stage among its inputs "
            f"({', '.join(MODEL_STAGES)}), got {', '.join(inputs) or 'none'}"
        )
    return checkpoints


def heldout_overlaps(inputs: Mapping[str, Path]) -> dict[str, dict]:
    """What the held-out text shares with each data stage's documents (its meta.json)."""
    metas = {name: Path(d) / DATA_META for name, d in inputs.items() if name.startswith("data-")}
    return {
        name: json.loads(path.read_text()).get("heldout_overlap", {})
        for name, path in metas.items()
        if path.is_file()
    }


@ray.remote(max_retries=0)
def score_heldout(
    heldout: HeldoutSpec, tokenizer_stage: Path, checkpoints: dict[str, Path], k: int
) -> dict[str, dict]:
    """Runs as a Ray task holding the stage's resources (a GPU when rollouts get one)."""
    from rsrl.eval.heldout import context_length, heldout_rows, score_checkpoint

    seq_len = context_length(list(checkpoints.values()))
    rows = heldout_rows(heldout, tokenizer_stage, seq_len)
    scores = {}
    for stage, model_dir in checkpoints.items():
        scores[stage] = {**score_checkpoint(model_dir, rows, k), "seq_len": rows.shape[1]}
        log.info(
            "eval: held-out %s: perplexity %.3f, entropy %.3f",
            stage,
            scores[stage]["perplexity"],
            scores[stage]["entropy"],
        )
    return scores


@ray.remote(max_retries=0)
def score_harness(
    harness: HarnessSpec, checkpoints: dict[str, Path]
) -> tuple[dict[str, dict], dict[str, dict[str, str]]]:
    """lm-evaluation-harness on each checkpoint, as a Ray task with the stage's resources."""
    from rsrl.eval.harness import run_harness

    return run_harness(harness, checkpoints)


def suite_checkpoints(checkpoints: dict[str, Path]) -> dict[str, Path]:
    """The checkpoints the suites sample: the last one, and before it the model RL started
    from (the last training stage's export) when the run has an RL stage."""
    names = list(checkpoints)
    chosen = names[-2:] if names[-1] == "rl" and len(names) > 1 else names[-1:]
    return {name: checkpoints[name] for name in chosen}


def run_suites(
    spec: Spec,
    checkpoints: dict[str, Path],
    tokenizer_stage: Path,
    out_dir: Path,
    pool: Any = None,
) -> dict[str, dict[str, SuiteResult]]:
    """{checkpoint: {suite: results}}: every suite of `spec.eval` on each checkpoint, with the
    same problems and sampling seeds. One group of rollout actors serves them all (borrowed
    from `pool`, RL's, when the apply has one); between checkpoints of one architecture only
    the weights are swapped."""
    from rsrl.data.prompts import read_prompts
    from rsrl.models.tokenizer import load_tokenizer
    from rsrl.rl.rollout.actors import RolloutGroup
    from rsrl.rl.rollout.pool import same_architecture
    from rsrl.verifiers import load_verifier

    ro = spec.rl.rollout if spec.rl is not None else RolloutSpec()
    tokenizer = load_tokenizer(tokenizer_stage)
    suites = [
        (suite, read_prompts(suite.data), load_verifier(suite.verifier.name, spec.plugins))
        for suite in eval_section(spec).suites
    ]
    group, loaded = None, None
    results: dict[str, dict[str, SuiteResult]] = {}
    try:
        for checkpoint, model_dir in checkpoints.items():
            if group is not None and loaded is not None and same_architecture(loaded, model_dir):
                group.load_checkpoint(model_dir)
            else:
                if group is not None:
                    group.shutdown()
                # The export carries its tokenizer, as for RL's actors: they can be reused.
                # measured in float32, whatever RL sampled in
                group = RolloutGroup.for_spec(ro, model_dir, "float32", pool=pool)
            loaded = model_dir
            results[checkpoint] = {
                suite.name: run_suite(
                    group,
                    tokenizer,
                    suite,
                    prompts,
                    verify,
                    spec.seed,
                    out_dir / "suites" / checkpoint,
                    out_dir,
                )
                for suite, prompts, verify in suites
            }
            for name, run in results[checkpoint].items():
                log.info("eval: %s on %s: %s", name, checkpoint, _headline(run.summary))
    finally:
        if group is not None:
            group.shutdown()
    return results


def rl_gain(before: SuiteResult, after: SuiteResult) -> dict[str, dict[str, float]]:
    """{metric: {"mean", "se", "z"}}: after - before, paired by problem."""
    return {
        name: paired_difference(before.values[name], values)
        for name, values in after.values.items()
    }


def read_rl_curve(rl_stage_dir: Path) -> dict[str, list[dict]]:
    """{suite: rows by RL step} from the rl stage's eval during training (empty when off)."""
    curve: dict[str, list[dict]] = {}
    for row in read_jsonl(Path(rl_stage_dir) / RL_CURVE_ROWS):
        curve.setdefault(row["suite"], []).append({k: v for k, v in row.items() if k != "suite"})
    return curve


def _headline(summary: dict) -> str:
    return ", ".join(
        f"{k} {summary[k]:.3f} ± {summary[k + '_se']:.3f}"
        for k in summary
        if k.startswith(("pass@", "avg@", "cons@")) and k + "_se" in summary
    )
