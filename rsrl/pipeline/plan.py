"""Compile a spec into the ordered stages of a run, each with a content-addressed key.

A stage's key hashes the spec sections it depends on plus its inputs' keys, so an edit
re-runs exactly the stages downstream of what it touched: `rl.*` re-runs rl, eval and
report; `objective.beta` re-runs pretrain and everything after it, but not the tokenizer
or the data preparation. This module is the only place that knows the order of stages.
Files are keyed by their paths; a Hugging Face dataset (hf://NAME, a save_to_disk
directory) also by its fingerprint, so new data on the hub or a re-saved dataset re-runs
the stages that read it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsrl.config import in_key
from rsrl.data.hf import fingerprint, is_hf_source
from rsrl.layout import MODEL_STAGES, TRAINING_STAGES, stage_dir
from rsrl.spec.load import spec_to_dict
from rsrl.spec.schema import Spec, eval_section
from rsrl.train.config import TrainStageSpec

# Bump a stage's version when its code changes what it produces, so old outputs are not reused.
STAGE_VERSIONS = {
    "tokenizer": 1,
    "data": 1,
    # pretrain 2: the MoE balance loss as Hugging Face's; WSD's last step above final.
    # 3 (all three): the per-step records are steps.jsonl (were metrics.jsonl).
    "pretrain": 3,
    "midtrain": 3,
    "rl": 4,  # 2: the RL curve (eval during RL); 3: rl.weight_decay (default 0, was 0.1)
    "eval": 2,  # 2: suites before and after RL, standard errors
    "report": 1,
}


@dataclass(frozen=True)
class Resources:
    """What a stage asks Ray for: `bundles` of {"CPU": n, "GPU": m}."""

    bundles: tuple[dict, ...]

    def describe(self) -> str:
        """e.g. '64 x (8 CPU, 1 GPU) + 16 x (8 CPU, 1 GPU)'."""
        groups: dict[str, int] = {}
        for b in self.bundles:
            shape = ", ".join(f"{b[r]:g} {r}" for r in ("CPU", "GPU") if b.get(r))
            groups[shape or "0 CPU"] = groups.get(shape or "0 CPU", 0) + 1
        return " + ".join(f"{n} x ({shape})" for shape, n in groups.items())


@dataclass(frozen=True)
class Stage:
    name: str  # unique within the run: tokenizer, data-pretrain, pretrain, ...
    kind: str  # which implementation runs it: tokenizer, data, pretrain, midtrain, rl, ...
    key: str
    inputs: tuple[str, ...]  # names of the stages whose outputs it reads
    config: dict  # the spec slice that went into the key (kept for the manifest)
    resources: Resources

    def out_dir(self, workdir: Path) -> Path:
        return stage_dir(workdir, self.name, self.key)


@dataclass(frozen=True)
class Plan:
    spec: Spec
    workdir: Path
    stages: tuple[Stage, ...]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def stage_dirs(self) -> dict[str, Path]:
        return {s.name: s.out_dir(self.workdir) for s in self.stages}


def stage_key(kind: str, config: Any, input_keys: list[str]) -> str:
    payload = json.dumps(
        {"kind": kind, "version": STAGE_VERSIONS[kind], "config": config, "inputs": input_keys},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def compile_plan(spec: Spec) -> Plan:
    """The stages `spec` asks for, in dependency order."""
    builder = _PlanBuilder(spec)
    builder.add_tokenizer()
    last_model: str | None = None
    for name in TRAINING_STAGES:
        stage_spec = getattr(spec.stages, name)
        if stage_spec is not None:
            data = builder.add_data(name, stage_spec)
            last_model = builder.add_training(name, stage_spec, data, last_model)
    if spec.rl is not None and last_model is not None:
        rl = _plain(spec.rl)
        # The dtype the engines run, however the spec says it (auto is the trainer's).
        rl["rollout"]["dtype"] = spec.rl.rollout.engine_dtype(
            spec.resources.deepspeed.torch_dtype()
        )
        rl["off_policy"]["correction"] = spec.rl.correction()  # auto, resolved
        rl_config = {
            "rl": rl,
            "seed": spec.seed,
            "plugins": spec.plugins,
            "precision": spec.resources.deepspeed.precision,
        }
        if spec.rl.eval_every > 0:  # the RL curve samples the eval suites
            rl_config["eval_suites"] = eval_section(spec).suites
        last_model = builder.add(
            "rl", "rl", rl_config, ["tokenizer", last_model], builder.rl_resources()
        )
    models = [s.name for s in builder.stages if s.kind in MODEL_STAGES]
    data_stages = [s.name for s in builder.stages if s.kind == "data"]  # held-out overlap
    if spec.eval is not None and models:
        # topk.k: the held-out local entropy and tail mass are measured against K_t.
        builder.add(
            "eval",
            "eval",
            {
                "eval": spec.eval,
                "seed": spec.seed,
                "plugins": spec.plugins,
                "k": spec.objective.topk.k,
            },
            ["tokenizer", *data_stages, *models],
            builder.rollout_resources(),
        )
    if models:
        report_inputs = [
            s.name for s in builder.stages if s.kind != "tokenizer" and s.kind != "data"
        ]
        builder.add("report", "report", {"name": spec.name}, report_inputs, _one_cpu())
    # Absolute: stage tasks run in Ray workers whose working directory may differ.
    return Plan(spec=spec, workdir=Path(spec.workdir).resolve(), stages=tuple(builder.stages))


def _one_cpu() -> Resources:
    return Resources(bundles=({"CPU": 1},))


class _PlanBuilder:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.stages: list[Stage] = []

    def add(
        self, name: str, kind: str, config: Any, inputs: list[str], resources: Resources
    ) -> str:
        config = _plain(config)
        hf_sources = sorted({p for p in _source_paths(config) if is_hf_source(p)})
        if hf_sources:  # only then: the keys of stages reading files stay as they were
            config["data_fingerprints"] = {p: fingerprint(p) for p in hf_sources}
        keys = [self._key_of(i) for i in inputs]
        self.stages.append(
            Stage(
                name=name,
                kind=kind,
                key=stage_key(kind, config, keys),
                inputs=tuple(inputs),
                config=config,
                resources=resources,
            )
        )
        return name

    def _key_of(self, name: str) -> str:
        return next(s.key for s in self.stages if s.name == name)

    def add_tokenizer(self) -> None:
        config: dict = {"tokenizer": self.spec.tokenizer, "seed": self.spec.seed}
        if self.spec.tokenizer.kind == "bpe":  # trained on the first training mixture
            first = self.spec.stages.pretrain or self.spec.stages.midtrain
            config["sample_from"] = first.data if first else []
        self.add("tokenizer", "tokenizer", config, [], _one_cpu())

    def add_data(self, stage_name: str, s: TrainStageSpec) -> str:
        config = {
            "data": s.data,
            "tokens": s.tokens,
            "seq_len": s.seq_len,
            "reset_position_ids": s.reset_position_ids,
            "seed": self.spec.seed,
        }
        heldout = self.spec.eval.heldout_text if self.spec.eval else None
        if heldout is not None:  # measured against it: held-out text must be unseen
            config["heldout"] = {"path": heldout.path, "text_field": heldout.text_field}
        return self.add(f"data-{stage_name}", "data", config, ["tokenizer"], _one_cpu())

    def add_training(self, name: str, s: TrainStageSpec, data: str, init: str | None) -> str:
        hyper = _plain(s)
        hyper["objective"] = s.objective_over(self.spec.objective)
        config = {
            "model": self.spec.model,
            "stage": hyper,
            "seed": self.spec.seed,
            "precision": self.spec.resources.deepspeed.precision,
        }
        inputs = ["tokenizer", data] + ([init] if init else [])
        return self.add(name, name, config, inputs, self.training_resources(s))

    def training_resources(self, s: TrainStageSpec | None = None) -> Resources:
        """The training workers' bundles; `s`: a training stage, whose own cpus_per_worker wins."""
        r = self.spec.resources
        cpus = s.cpus_per_worker if s is not None and s.cpus_per_worker else r.cpus_per_worker
        worker = {"CPU": cpus, "GPU": r.gpus_per_worker}
        return Resources(bundles=tuple(dict(worker) for _ in range(r.num_workers)))

    def rollout_resources(self) -> Resources:
        ro = self.spec.rl.rollout if self.spec.rl else None
        if ro is None:
            return _one_cpu()
        actor = {"CPU": ro.cpus_per_actor, "GPU": ro.gpus_per_actor}
        return Resources(bundles=tuple(dict(actor) for _ in range(ro.actors)))

    def rl_resources(self) -> Resources:
        return Resources(
            bundles=self.training_resources().bundles + self.rollout_resources().bundles
        )


def _source_paths(config: Any) -> list[str]:
    """Every `path:` value in a plain stage config: its data sources, prompts, suites."""
    if isinstance(config, dict):
        own = [config["path"]] if isinstance(config.get("path"), str) else []
        return own + [p for v in config.values() for p in _source_paths(v)]
    if isinstance(config, list):
        return [p for v in config for p in _source_paths(v)]
    return []


def _plain(obj: Any) -> Any:
    """Dataclasses and containers as plain JSON-able values, for hashing and manifests.

    Unset (None) fields are left out, so adding an optional key to the schema does not
    change the keys of stages that don't use it (and cached work stays cached); so are the
    fields declared NOT_IN_KEY (rsrl.config), which change how a stage runs, not its output."""
    if isinstance(obj, Spec):
        return spec_to_dict(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = dataclasses.fields(obj)
        return _plain({f.name: getattr(obj, f.name) for f in fields if in_key(f)})
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
