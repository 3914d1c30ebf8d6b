"""Range and cross-field checks on a typed spec. All problems are collected, then raised at once."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any, cast

from rsrl.data.paths import check_data_path
from rsrl.eval.results import RESERVED_NAMES
from rsrl.models.presets import DENSE_FIELDS, MOE_FIELDS, PRESETS
from rsrl.spec.errors import SpecError, did_you_mean
from rsrl.spec.schema import (
    DataSourceSpec,
    EvalSpec,
    HarnessSpec,
    LoggingSpec,
    ObjectiveSpec,
    PromptSourceSpec,
    ResourcesSpec,
    RLSpec,
    Spec,
    SweepSpec,
    TrainStageSpec,
    VerifierSpec,
    baseline_point,
    nested_dataclass,
    random_paths,
    value_key,
)
from rsrl.vocabulary import (
    IMPLS,
    OFF_POLICY_CORRECTIONS,
    OFF_POLICY_LEVELS,
    POSITIVE_FORMS,
    ROLLOUT_DTYPES,
    ROLLOUT_ENGINES,
    WEIGHT_SYNCS,
    beta_bound,
)

LR_SCHEDULES = ("wsd",)
LOSS_AGGS = ("token-mean", "seq-mean-token-mean")
ADV_NORMS = ("std", "none")
PRECISIONS = ("fp32", "bf16")
WANDB_MODES = ("online", "offline", "disabled")
ON_ERROR = ("fail", "warn")
METRIC_ROOTS = ("eval", "pretrain", "midtrain", "rl")


class Problems:
    """Collects 'path: message' lines so that one run of `rsrl validate` shows every mistake."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")

    def need(self, ok: bool, path: str, value: Any, rule: str) -> None:
        if not ok:
            self.add(path, f"{rule}, got {value!r}")

    def one_of(self, value: Any, allowed: Iterable[str], path: str) -> None:
        allowed = list(allowed)
        if value not in allowed:
            hint = did_you_mean(str(value), allowed)
            self.add(path, f"unknown value {value!r}{hint}; allowed: {', '.join(allowed)}")


def validate(spec: Spec) -> None:
    """Raise SpecError listing every problem in `spec`; return quietly when it is sound."""
    p = Problems()
    p.need(
        bool(spec.name) and "/" not in spec.name,
        "name",
        spec.name,
        "must be a non-empty name without '/'",
    )
    _check_model(spec, p)
    _check_tokenizer(spec, p)
    _check_objective(spec.objective, "objective", p)
    has_training = False
    for stage_name in ("pretrain", "midtrain"):
        stage = getattr(spec.stages, stage_name)
        if stage is not None:
            has_training = True
            _check_train_stage(spec, stage, f"stages.{stage_name}", p)
    if not has_training and (spec.rl or spec.eval):
        p.add("stages", "rl and eval need a trained model: add stages.pretrain")
    if spec.rl is not None:
        _check_rl(spec.rl, spec.plugins, p)
        if spec.rl.eval_every > 0 and not (spec.eval and spec.eval.suites):
            p.add(
                "rl.eval_every",
                f"evaluates the eval suites during RL, but eval.suites is "
                f"empty, got {spec.rl.eval_every}; add a suite or set rl.eval_every: 0",
            )
    if spec.eval is not None:
        _check_eval(spec.eval, spec.plugins, p)
        if spec.eval.harness is not None:
            _check_harness(spec.eval.harness, _model_stages(spec), p)
    _check_resources(spec.resources, p)
    if spec.sweep is not None:
        _check_sweep(spec.sweep, p)
    _check_logging(spec.logging, p)
    _check_plugins(spec.plugins, p)
    if p.lines:
        raise SpecError(p.lines)


def _check_model(spec: Spec, p: Problems) -> None:
    m = spec.model
    if m.preset is not None:
        p.one_of(m.preset, PRESETS, "model.preset")
        return
    if m.arch is None:
        p.add("model", "set model.preset (see `rsrl models`) or model.arch: dense | moe")
        return
    p.one_of(m.arch, ("dense", "moe"), "model.arch")
    required = MOE_FIELDS if m.arch == "moe" else DENSE_FIELDS
    for name in required:
        value = getattr(m, name)
        if value is None:
            p.add(f"model.{name}", f"required for arch {m.arch} without a preset")
        else:
            p.need(value >= 1, f"model.{name}", value, "must be >= 1")
    if m.num_heads and m.num_kv_heads:
        p.need(
            m.num_heads % m.num_kv_heads == 0,
            "model.num_kv_heads",
            m.num_kv_heads,
            f"must divide num_heads ({m.num_heads})",
        )
    if m.router_aux_loss_coef is not None:
        p.need(
            m.router_aux_loss_coef >= 0,
            "model.router_aux_loss_coef",
            m.router_aux_loss_coef,
            "must be >= 0",
        )
    if m.num_experts and m.experts_per_token:
        p.need(
            m.experts_per_token <= m.num_experts,
            "model.experts_per_token",
            m.experts_per_token,
            f"must be <= num_experts ({m.num_experts})",
        )


def model_vocab_size(spec: Spec) -> int | None:
    if spec.model.vocab_size is not None:
        return spec.model.vocab_size
    return PRESETS.get(spec.model.preset or "", {}).get("vocab_size")


def _check_tokenizer(spec: Spec, p: Problems) -> None:
    t = spec.tokenizer
    p.one_of(t.kind, ("bpe", "pretrained"), "tokenizer.kind")
    if t.kind == "pretrained":
        if not t.path:
            p.add("tokenizer.path", "required for kind: pretrained (a local HF tokenizer dir)")
        else:
            problem = check_data_path(t.path, want_dir=True)
            if problem:
                p.add("tokenizer.path", problem)
    if t.kind == "bpe":
        p.need(
            t.vocab_size is not None and t.vocab_size >= 300,
            "tokenizer.vocab_size",
            t.vocab_size,
            "must be >= 300 for a byte-level BPE (256 bytes + specials)",
        )
        vocab = model_vocab_size(spec)
        if t.vocab_size and vocab:
            p.need(
                t.vocab_size <= vocab,
                "tokenizer.vocab_size",
                t.vocab_size,
                f"must be <= the model's vocab_size ({vocab})",
            )


def _check_objective(o: ObjectiveSpec, path: str, p: Problems) -> None:
    p.one_of(o.positive_form, POSITIVE_FORMS, f"{path}.positive_form")
    p.one_of(o.impl, IMPLS, f"{path}.impl")
    p.need(o.topk.k >= 1, f"{path}.topk.k", o.topk.k, "must be >= 1")
    bound = beta_bound(o.positive_form, o.beta)
    if bound:
        p.add(f"{path}.beta", f"{bound}, got {o.beta!r}")


def effective_objective(spec: Spec, stage: TrainStageSpec) -> ObjectiveSpec:
    """The top-level objective with the stage's `objective:` keys laid over it."""
    from omegaconf import OmegaConf

    if not stage.objective:
        return spec.objective
    merged = OmegaConf.merge(OmegaConf.structured(spec.objective), stage.objective)
    return cast(ObjectiveSpec, OmegaConf.to_object(merged))


def _check_train_stage(spec: Spec, s: TrainStageSpec, path: str, p: Problems) -> None:
    _check_sources(s.data, f"{path}.data", p)
    p.need(s.tokens > 0, f"{path}.tokens", s.tokens, "must be > 0")
    p.need(s.seq_len > 0, f"{path}.seq_len", s.seq_len, "must be > 0")
    p.need(
        s.batch_tokens >= s.seq_len,
        f"{path}.batch_tokens",
        s.batch_tokens,
        f"must be >= seq_len ({s.seq_len})",
    )
    p.need(s.micro_batch_size >= 1, f"{path}.micro_batch_size", s.micro_batch_size, "must be >= 1")
    p.need(
        s.cpus_per_worker is None or s.cpus_per_worker > 0,
        f"{path}.cpus_per_worker",
        s.cpus_per_worker,
        "must be > 0 (or unset: resources.cpus_per_worker)",
    )
    p.need(s.lr.peak > 0, f"{path}.lr.peak", s.lr.peak, "must be > 0")
    p.need(
        0 <= s.lr.final <= s.lr.peak,
        f"{path}.lr.final",
        s.lr.final,
        f"must be in [0, peak={s.lr.peak}]",
    )
    p.need(s.lr.warmup_steps >= 0, f"{path}.lr.warmup_steps", s.lr.warmup_steps, "must be >= 0")
    p.one_of(s.lr.schedule, LR_SCHEDULES, f"{path}.lr.schedule")
    p.need(
        0 <= s.lr.decay_fraction <= 1,
        f"{path}.lr.decay_fraction",
        s.lr.decay_fraction,
        "must be in [0, 1]",
    )
    _check_warmup_before_decay(spec, s, path, p)
    p.need(s.rope_theta > 0, f"{path}.rope_theta", s.rope_theta, "must be > 0")
    for name in ("log_every", "checkpoint_every", "keep_checkpoints"):
        value = getattr(s, name)
        p.need(value >= 1, f"{path}.{name}", value, "must be >= 1")
    if s.objective:
        try:
            _check_objective(effective_objective(spec, s), f"{path}.objective", p)
        except Exception as err:  # OmegaConf: unknown key or wrong type in the override
            p.add(f"{path}.objective", f"not a valid objective override: {err}".splitlines()[0])


def _check_warmup_before_decay(spec: Spec, s: TrainStageSpec, path: str, p: Problems) -> None:
    """Warm-up running into the decay window would drop the rate from one line to the other."""
    from rsrl.data.mixture import rows_for_budget
    from rsrl.train.batches import BatchLayout
    from rsrl.train.schedule import decay_start

    workers = spec.resources.num_workers
    if s.lr.decay_fraction <= 0 or not (
        s.tokens > 0
        and 0 < s.seq_len <= s.batch_tokens
        and s.micro_batch_size >= 1
        and workers >= 1
    ):
        return  # nothing to decay, or the step count is unknown (reported above)
    layout = BatchLayout.for_budget(s.batch_tokens, s.seq_len, s.micro_batch_size, workers)
    steps = rows_for_budget(s.tokens, s.seq_len) // layout.rows_per_step
    start = decay_start(steps, s.lr)
    p.need(
        s.lr.warmup_steps <= start,
        f"{path}.lr.warmup_steps",
        s.lr.warmup_steps,
        f"must be <= {start}: the stage has {steps} steps (tokens / batch_tokens) and "
        f"decays over the last {steps - start} (lr.decay_fraction); lower "
        "lr.warmup_steps or lr.decay_fraction",
    )


def _check_sources(sources: list[DataSourceSpec], path: str, p: Problems) -> None:
    from rsrl.data.sources import template_problem  # rsrl.data imports rsrl.spec's errors

    if not sources:
        p.add(path, "needs at least one source, e.g. [{path: synth://pretrain, weight: 1.0}]")
    for i, src in enumerate(sources):
        problem = check_data_path(src.path)
        if problem:
            p.add(f"{path}[{i}].path", problem)
        p.need(src.weight > 0, f"{path}[{i}].weight", src.weight, "must be > 0")
        problem = template_problem(src.template) if src.template is not None else None
        if problem:
            p.add(f"{path}[{i}].template", f"{problem}, got {src.template!r}")


def _check_prompt_source(src: PromptSourceSpec, path: str, p: Problems) -> None:
    problem = check_data_path(src.path)
    if problem:
        p.add(f"{path}.path", problem)
    if src.limit is not None:
        p.need(src.limit >= 1, f"{path}.limit", src.limit, "must be >= 1")
    for name, wanted in (src.where or {}).items():
        values = wanted if isinstance(wanted, list) else [wanted]
        p.need(
            len(values) > 0 and all(isinstance(v, (str, int, float, bool)) for v in values),
            f"{path}.where.{name}",
            wanted,
            "must be a value or a non-empty list of values",
        )


def _check_verifier(v: VerifierSpec, plugins: list[str], path: str, p: Problems) -> None:
    from rsrl.verifiers.registry import available_verifiers, entry_point_problem

    p.one_of(v.name, available_verifiers(plugins), f"{path}.name")
    problem = entry_point_problem(v.name)
    if problem:
        p.add(f"{path}.name", problem)
    p.need(v.timeout_s > 0, f"{path}.timeout_s", v.timeout_s, "must be > 0")


def _check_sampling(obj: Any, path: str, p: Problems) -> None:
    p.need(obj.temperature > 0, f"{path}.temperature", obj.temperature, "must be > 0")
    p.need(0 < obj.top_p <= 1, f"{path}.top_p", obj.top_p, "must be in (0, 1]")
    p.need(obj.max_new_tokens >= 1, f"{path}.max_new_tokens", obj.max_new_tokens, "must be >= 1")


def _check_rl(rl: RLSpec, plugins: list[str], p: Problems) -> None:
    _check_prompt_source(rl.prompts, "rl.prompts", p)
    _check_verifier(rl.verifier, plugins, "rl.verifier", p)
    p.need(rl.steps >= 1, "rl.steps", rl.steps, "must be >= 1")
    p.need(rl.prompts_per_step >= 1, "rl.prompts_per_step", rl.prompts_per_step, "must be >= 1")
    p.need(
        rl.group_size >= 2,
        "rl.group_size",
        rl.group_size,
        "must be >= 2 (group-normalised advantages need several samples per prompt)",
    )
    p.need(rl.lr > 0, "rl.lr", rl.lr, "must be > 0")
    p.need(rl.weight_decay >= 0, "rl.weight_decay", rl.weight_decay, "must be >= 0")
    p.need(rl.clip.eps_low >= 0, "rl.clip.eps_low", rl.clip.eps_low, "must be >= 0")
    p.need(rl.clip.eps_high >= 0, "rl.clip.eps_high", rl.clip.eps_high, "must be >= 0")
    p.need(rl.kl_coef >= 0, "rl.kl_coef", rl.kl_coef, "must be >= 0")
    p.need(
        rl.max_resample_rounds >= 0,
        "rl.max_resample_rounds",
        rl.max_resample_rounds,
        "must be >= 0",
    )
    for name in (
        "mini_batches",
        "micro_batch_size",
        "checkpoint_every",
        "keep_checkpoints",
        "eval_problems",
    ):
        p.need(getattr(rl, name) >= 1, f"rl.{name}", getattr(rl, name), "must be >= 1")
    p.need(
        rl.micro_batch_tokens is None or rl.micro_batch_tokens >= 1,
        "rl.micro_batch_tokens",
        rl.micro_batch_tokens,
        "must be >= 1 (or unset: micro_batch_size sequences)",
    )
    p.need(rl.eval_every >= 0, "rl.eval_every", rl.eval_every, "must be >= 0 (0 turns it off)")
    p.one_of(rl.loss_agg, LOSS_AGGS, "rl.loss_agg")
    p.one_of(rl.adv_norm, ADV_NORMS, "rl.adv_norm")
    p.one_of(rl.rollout.engine, ROLLOUT_ENGINES, "rl.rollout.engine")
    p.need(rl.rollout.actors >= 1, "rl.rollout.actors", rl.rollout.actors, "must be >= 1")
    p.one_of(rl.rollout.weight_sync, WEIGHT_SYNCS, "rl.rollout.weight_sync")
    p.one_of(rl.rollout.dtype, ROLLOUT_DTYPES, "rl.rollout.dtype")
    ro = rl.rollout
    p.need(ro.sync_bucket_mb >= 1, "rl.rollout.sync_bucket_mb", ro.sync_bucket_mb, "must be >= 1")
    p.need(ro.sync_timeout_s > 0, "rl.rollout.sync_timeout_s", ro.sync_timeout_s, "must be > 0")
    _check_sampling(rl.rollout, "rl.rollout", p)
    _check_off_policy(rl, p)


def _check_off_policy(rl: RLSpec, p: Problems) -> None:
    op = rl.off_policy
    p.one_of(op.correction, OFF_POLICY_CORRECTIONS, "rl.off_policy.correction")
    p.one_of(op.level, OFF_POLICY_LEVELS, "rl.off_policy.level")
    p.need(
        op.cap > 1, "rl.off_policy.cap", op.cap, "must be > 1 (the weights' bound, 1 / cap..cap)"
    )
    p.need(
        op.correction == "none" or rl.rollout.temperature == 1.0,
        "rl.off_policy.correction",
        op.correction,
        "needs rl.rollout.temperature 1 (the engines report temperature-1 log-probs, mu's "
        "only at temperature 1)",
    )


def _check_eval(ev: EvalSpec, plugins: list[str], p: Problems) -> None:
    seen: set[str] = set()
    for i, suite in enumerate(ev.suites):
        path = f"eval.suites[{i}]"
        p.need(
            bool(suite.name) and suite.name not in seen and suite.name not in RESERVED_NAMES,
            f"{path}.name",
            suite.name,
            "must be a non-empty name, unique among the suites, "
            f"and none of {', '.join(RESERVED_NAMES)} (metrics use eval.<that>.* for "
            "held-out text and the RL comparison)",
        )
        seen.add(suite.name)
        _check_prompt_source(suite.data, f"{path}.data", p)
        _check_verifier(suite.verifier, plugins, f"{path}.verifier", p)
        p.need(suite.n_samples >= 1, f"{path}.n_samples", suite.n_samples, "must be >= 1")
        for j, k in enumerate(suite.k):
            p.need(
                1 <= k <= suite.n_samples,
                f"{path}.k[{j}]",
                k,
                f"must be in [1, n_samples={suite.n_samples}] (pass@k needs k samples)",
            )
        _check_sampling(suite, path, p)
    if ev.heldout_text is not None:
        problem = check_data_path(ev.heldout_text.path)
        if problem:
            p.add("eval.heldout_text.path", problem)
        p.need(
            ev.heldout_text.tokens > 0,
            "eval.heldout_text.tokens",
            ev.heldout_text.tokens,
            "must be > 0",
        )


def _model_stages(spec: Spec) -> list[str]:
    """The model stages `spec` runs, in pipeline order (the checkpoints eval can score)."""
    stages = [name for name in ("pretrain", "midtrain") if getattr(spec.stages, name) is not None]
    return stages + (["rl"] if spec.rl is not None else [])


def _check_harness(h: HarnessSpec, produced: list[str], p: Problems) -> None:
    from rsrl.eval.harness import unknown_tasks  # imports lm_eval: only for eval.harness
    from rsrl.pipeline.plan import MODEL_STAGES  # plan imports this module

    path = "eval.harness"
    p.need(
        len(h.tasks) > 0 and len(set(h.tasks)) == len(h.tasks),
        f"{path}.tasks",
        h.tasks,
        "must list lm-eval task names, each once (e.g. [arc_easy]; `lm-eval ls tasks`)",
    )
    p.need(h.num_fewshot >= 0, f"{path}.num_fewshot", h.num_fewshot, "must be >= 0")
    p.need(h.limit is None or h.limit >= 1, f"{path}.limit", h.limit, "must be >= 1 (or unset)")
    p.need(h.batch_size >= 1, f"{path}.batch_size", h.batch_size, "must be >= 1")
    for i, checkpoint in enumerate(h.checkpoints):
        p.one_of(checkpoint, MODEL_STAGES, f"{path}.checkpoints[{i}]")
    p.need(
        any(c in produced for c in h.checkpoints),
        f"{path}.checkpoints",
        h.checkpoints,
        f"must name a checkpoint this spec produces ({', '.join(produced) or 'none'})",
    )
    if h.include_path is not None:
        problem = check_data_path(h.include_path, want_dir=True)
        if problem:
            p.add(f"{path}.include_path", f"{problem} (a directory of lm-eval task YAMLs)")
            return
    unknown = unknown_tasks(h.tasks, h.include_path)
    if unknown:
        where = f"not in {h.include_path} and " if h.include_path else ""
        p.add(
            f"{path}.tasks",
            f"lm-eval does not know {', '.join(map(repr, unknown))}: {where}not among its "
            "own tasks, groups and tags (see `lm-eval ls tasks`); put your own task YAMLs "
            "in a directory and name it in eval.harness.include_path",
        )


def _check_resources(r: ResourcesSpec, p: Problems) -> None:
    p.need(r.num_workers >= 1, "resources.num_workers", r.num_workers, "must be >= 1")
    p.need(r.cpus_per_worker >= 0, "resources.cpus_per_worker", r.cpus_per_worker, "must be >= 0")
    p.need(r.gpus_per_worker >= 0, "resources.gpus_per_worker", r.gpus_per_worker, "must be >= 0")
    p.need(r.max_failures >= 0, "resources.max_failures", r.max_failures, "must be >= 0")
    ds = r.deepspeed
    p.need(
        ds.zero_stage in (0, 1, 2, 3),
        "resources.deepspeed.zero_stage",
        ds.zero_stage,
        "must be 0, 1, 2 or 3",
    )
    p.one_of(ds.precision, PRECISIONS, "resources.deepspeed.precision")
    p.need(ds.grad_clip > 0, "resources.deepspeed.grad_clip", ds.grad_clip, "must be > 0")
    p.need(
        ds.weight_decay >= 0, "resources.deepspeed.weight_decay", ds.weight_decay, "must be >= 0"
    )


def _check_sweep(sw: SweepSpec, p: Problems) -> None:
    p.need(sw.seeds >= 1, "sweep.seeds", sw.seeds, "must be >= 1")
    p.need(
        "seed" not in sw.space,
        "sweep.space.seed",
        "seed",
        "is not searched directly: set sweep.seeds to run every point with several seeds",
    )
    for key, dim in sw.space.items():
        path = f"sweep.space.{key}"
        problem = spec_path_problem(key)
        if problem:
            p.add(path, problem)
        kinds = {f.name: getattr(dim, f.name) for f in dataclasses.fields(dim)}
        given = [name for name, value in kinds.items() if value is not None]
        if len(given) != 1:
            p.add(path, f"give exactly one of {', '.join(kinds)}; got {given or 'none'}")
            continue
        values = kinds[given[0]]
        if given[0] in ("grid", "choice"):
            p.need(len(values) >= 1, f"{path}.{given[0]}", values, "must list at least one value")
        else:
            ok = len(values) == 2 and values[0] < values[1]
            ok = ok and (given[0] == "uniform" or values[0] > 0)
            p.need(
                ok,
                f"{path}.{given[0]}",
                values,
                "must be [low, high] with low < high"
                + (" and low > 0" if given[0] == "loguniform" else ""),
            )
    root = sw.metric.split(".", 1)[0]
    p.need(
        root in METRIC_ROOTS and "." in sw.metric,
        "sweep.metric",
        sw.metric,
        f"must be a dotted metric under {', '.join(METRIC_ROOTS)} (e.g. eval.arith.pass@4)",
    )
    p.one_of(sw.mode, ("max", "min"), "sweep.mode")
    p.need(sw.num_samples >= 1, "sweep.num_samples", sw.num_samples, "must be >= 1")
    p.need(
        sw.num_samples == 1 or bool(random_paths(sw)),
        "sweep.num_samples",
        sw.num_samples,
        "draws the choice/uniform/loguniform dimensions, and sweep.space has none: every "
        "draw would repeat the same trials and count as extra seeds; for replicates set "
        "sweep.seeds instead",
    )
    p.need(sw.max_concurrent >= 1, "sweep.max_concurrent", sw.max_concurrent, "must be >= 1")
    if sw.baseline:
        _check_baseline(sw, p)


def _check_baseline(sw: SweepSpec, p: Problems) -> None:
    """The baseline is one arm: a value for every swept path, each among the grid values
    (or the choices: whether the draws include it is checked when the sweep draws them),
    compared by value. Otherwise no arm would match and nothing would be compared."""
    for key in sw.baseline or {}:
        if key not in sw.space and not any(path.startswith(f"{key}.") for path in sw.space):
            p.add(
                f"sweep.baseline.{key}",
                f"must name a path of sweep.space ({', '.join(sw.space) or 'none'})",
            )
    point = baseline_point(sw)
    for path, dim in sw.space.items():
        values = dim.grid if dim.grid is not None else dim.choice
        if path not in point:
            p.add(
                "sweep.baseline",
                f"gives no value for {path}: the baseline is one arm, with a value for every "
                "path of sweep.space",
            )
        elif values is None:
            p.add(
                f"sweep.baseline.{path}",
                "no arm repeats a value drawn from a range: sweep this path with grid or "
                "choice to compare with a baseline",
            )
        elif value_key(point[path]) not in {value_key(v) for v in values}:
            kind = "grid" if dim.grid is not None else "choice"
            p.need(
                False,
                f"sweep.baseline.{path}",
                point[path],
                f"must be one of the {kind} values of sweep.space.{path} ({values})",
            )


def spec_path_problem(dotted: str) -> str | None:
    """None when `dotted` names a field of the schema (list items as name.0), else a message."""
    cls: Any = Spec
    for part in dotted.split("."):
        if part.isdigit():
            continue
        if cls is None:
            return f"'{dotted}' is not a spec path: '{part}' is below a plain value"
        if cls is dict:
            return None  # free-form options, e.g. rl.verifier.options.*
        fields = [f.name for f in dataclasses.fields(cls)]
        if part not in fields:
            return (
                f"'{dotted}' is not a spec path: unknown key '{part}'{did_you_mean(part, fields)}"
            )
        hint = typing.get_type_hints(cls)[part]
        cls = nested_dataclass(cls, part) or (dict if "Dict" in str(hint) else None)
    return None


def _check_logging(lg: LoggingSpec, p: Problems) -> None:
    """Values only: whether a tracker is reachable is checked when a run starts."""
    p.one_of(lg.on_error, ON_ERROR, "logging.on_error")
    if lg.wandb is not None:
        p.one_of(lg.wandb.mode, WANDB_MODES, "logging.wandb.mode")
    names = {"wandb": ("project", "entity", "group"), "mlflow": ("tracking_uri", "experiment")}
    for section, fields in names.items():
        tracker = getattr(lg, section)
        for name in fields if tracker is not None else ():
            value = getattr(tracker, name)
            p.need(
                value is None or bool(value.strip()),
                f"logging.{section}.{name}",
                value,
                "must not be empty (leave it out for the default)",
            )


def _check_plugins(plugins: list[str], p: Problems) -> None:
    from rsrl.verifiers.registry import plugin_problem

    for i, plugin in enumerate(plugins):
        problem = plugin_problem(plugin)
        if problem:
            p.add(f"plugins[{i}]", problem)
