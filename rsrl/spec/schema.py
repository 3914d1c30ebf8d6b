"""The spec schema: every knob of an rsrl experiment, typed and documented in one place.

These dataclasses are OmegaConf structured configs: the YAML is merged onto them, so an
unknown key or a value of the wrong type is caught before anything runs. Ranges and
cross-field rules live in `validate.py`. docs/spec.md explains each key.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast


@dataclass
class ModelSpec:
    """A preset name, or an architecture given field by field (fields override the preset)."""

    preset: str | None = None  # tiny-dense, tiny-moe, paper-1b, ... (`rsrl models`)
    arch: str | None = None  # dense | moe
    vocab_size: int | None = None
    hidden_size: int | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    num_kv_heads: int | None = None
    head_dim: int | None = None
    ffn_size: int | None = None
    num_experts: int | None = None
    experts_per_token: int | None = None
    expert_ffn_size: int | None = None
    tie_embeddings: bool | None = None
    router_aux_loss_coef: float | None = None  # MoE load-balancing loss weight (0.001)


@dataclass
class TokenizerSpec:
    kind: str = "bpe"  # bpe: trained on the pre-training mixture | pretrained: a local HF dir
    vocab_size: int | None = None
    path: str | None = None  # for kind: pretrained


@dataclass
class TopKSpec:
    k: int = 100  # size of K_t, the high-ranking set of each position
    lam_top: float = 0.0  # reward of negatives inside K_t (lambda-tilde)
    lam_tail: float = 0.0  # reward of negatives outside K_t (lambda-hat)


@dataclass
class ObjectiveSpec:
    beta: float = 0.0  # positive-reward exponent: < 0 sharpens, > 0 flattens
    positive_form: str = "product"  # product | exponent
    topk: TopKSpec = field(default_factory=TopKSpec)
    impl: str = "auto"  # auto | reference | triton: the kernels (auto: Triton on CUDA)
    # The LM head and the loss in one chunked pass that never holds the [tokens, vocab]
    # logits (large vocabularies); runs the `impl` kernels. Training stages only: RL needs logits.
    fused_head: bool = False


@dataclass
class DataSourceSpec:
    path: str = ""  # file, directory, glob, synth://NAME, hf://NAME[/CONFIG][@SPLIT] or a
    # save_to_disk directory (docs/data.md)
    weight: float = 1.0  # share of the stage's tokens, relative to the other sources
    text_field: str = "text"
    template: str | None = None  # e.g. "Q: {question}\nA: {answer}" instead of text_field


@dataclass
class LRSpec:
    peak: float = 3.0e-4
    final: float = 3.0e-4
    warmup_steps: int = 0
    schedule: str = "wsd"  # warmup-stable-decay
    decay_fraction: float = 0.0  # share of the steps spent decaying from peak to final


@dataclass
class TrainStageSpec:
    data: list[DataSourceSpec] = field(default_factory=list)
    tokens: int = 0  # token budget of the stage
    seq_len: int = 256
    batch_tokens: int = 8192  # tokens per optimizer step (across workers)
    micro_batch_size: int = 4  # sequences per worker per forward pass
    lr: LRSpec = field(default_factory=LRSpec)
    rope_theta: float = 10000.0
    reset_position_ids: bool = False  # restart positions at each document inside a packed row
    objective: dict[str, Any] | None = None  # keys of `objective:` this stage overrides
    # CPUs per training worker in this stage, instead of resources.cpus_per_worker: a
    # training stage may take every core while RL's trainer shares them with its rollout actors.
    cpus_per_worker: float | None = None
    log_every: int = 10
    checkpoint_every: int = 100  # optimizer steps
    keep_checkpoints: int = 2


@dataclass
class StagesSpec:
    pretrain: TrainStageSpec | None = None
    midtrain: TrainStageSpec | None = None


@dataclass
class PromptSourceSpec:
    path: str = ""
    prompt_field: str = "prompt"
    answer_field: str = "answer"
    # keep only items whose field matches: {difficulty: [1, 2]} or {task: count}
    where: dict[str, Any] | None = None
    limit: int | None = None  # read only the first `limit` (matching) items (quick evals)


@dataclass
class VerifierSpec:
    name: str = "math"  # a built-in, an `rsrl.verifiers` entry point, or from `plugins:`
    timeout_s: float = 10.0
    options: dict[str, Any] = field(default_factory=dict)  # passed to the verifier


@dataclass
class ClipSpec:
    eps_low: float = 0.2
    eps_high: float = 0.28  # clip-higher: a wider upper bound keeps exploration alive


@dataclass
class RolloutSpec:
    engine: str = "vllm"  # vllm | hf
    actors: int = 1
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    # The engines' precision: auto | float32 | bfloat16 (auto: resources.deepspeed.precision).
    # A bf16 engine does not sample from the fp32 trainer's policy: see rl.off_policy.
    dtype: str = "auto"
    # New weights go to the engines after every update (none of these is in the stage key):
    # collective streams buckets over a process group of trainer rank 0 and the engines,
    # object_store puts the full state dict into Ray's object store; auto is collective
    # wherever it works. Every sync is verified by weight fingerprints.
    weight_sync: str = "auto"  # auto | object_store | collective
    sync_bucket_mb: int = 512  # collective: the bytes gathered and broadcast at a time
    sync_timeout_s: float = 600.0  # a sync (or forming its group) running longer fails the stage


@dataclass
class OffPolicySpec:
    """The correction for samples the trainer's policy pi_old did not draw: the engine's
    policy mu differs (a bf16 engine, other kernels). docs/rl.md says when to use which."""

    correction: str = "none"  # none | tis (weights min(pi_old / mu, cap)) | mis (drops outside)
    level: str = "token"  # token | sequence (the ratio of the whole response)
    cap: float = 2.0  # tis: the weights' upper bound; mis: ratios outside [1 / cap, cap] dropped


@dataclass
class RLSpec:
    prompts: PromptSourceSpec = field(default_factory=PromptSourceSpec)
    verifier: VerifierSpec = field(default_factory=VerifierSpec)
    steps: int = 30
    prompts_per_step: int = 8
    group_size: int = 8
    lr: float = 1.0e-5
    # Not resources.deepspeed.weight_decay (pre-training's 0.1): GRPO setups (verl, OpenRLHF)
    # use 0, so a short RL stage does not pull the pre-trained weights towards zero.
    weight_decay: float = 0.0
    clip: ClipSpec = field(default_factory=ClipSpec)
    dynamic_sampling: bool = True
    max_resample_rounds: int = 4  # cap on refills when dynamic sampling drops groups
    kl_coef: float = 0.0
    loss_agg: str = "token-mean"  # token-mean | seq-mean-token-mean
    adv_norm: str = "std"  # std | none
    mini_batches: int = 1  # optimizer updates per step; 1 is strictly on-policy (the paper)
    micro_batch_size: int = 8  # sequences per worker per forward pass
    # Instead: micro-batches filled up to this many padded tokens (rows x longest row) per
    # worker, sequences of similar length together; a longer sequence goes alone.
    micro_batch_tokens: int | None = None
    checkpoint_every: int = 10  # RL steps
    keep_checkpoints: int = 2  # the newest checkpoints kept (not part of the stage key)
    # The RL curve: every `eval_every` steps (and before the first), the first
    # `eval_problems` problems of each eval suite, sampled as the suite says; 0 turns it off.
    eval_every: int = 0
    eval_problems: int = 32
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    off_policy: OffPolicySpec = field(default_factory=OffPolicySpec)


@dataclass
class SuiteSpec:
    name: str = ""
    data: PromptSourceSpec = field(default_factory=PromptSourceSpec)
    verifier: VerifierSpec = field(default_factory=VerifierSpec)
    n_samples: int = 16
    k: list[int] = field(default_factory=lambda: [1])
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 64


@dataclass
class HeldoutSpec:
    path: str = ""
    text_field: str = "text"
    tokens: int = 32768  # how much held-out text to score


@dataclass
class HarnessSpec:
    """Base-model benchmarks run by lm-evaluation-harness (its `hf` model, tasks and metrics)
    on the HF export of each named checkpoint."""

    tasks: list[str] = field(default_factory=list)  # lm-eval task, group or tag names
    num_fewshot: int = 0
    limit: int | None = None  # only the first `limit` documents of each task (quick looks)
    include_path: str | None = None  # a directory of your own task YAMLs (local data: offline)
    batch_size: int = 8
    # Those the run produces are scored; the rest are skipped.
    checkpoints: list[str] = field(default_factory=lambda: ["pretrain", "midtrain", "rl"])


@dataclass
class EvalSpec:
    suites: list[SuiteSpec] = field(default_factory=list)
    heldout_text: HeldoutSpec | None = None
    harness: HarnessSpec | None = None


@dataclass
class DeepSpeedSpec:
    zero_stage: int = 2
    precision: str = "fp32"  # fp32 | bf16
    offload_optimizer: bool = False
    grad_clip: float = 1.0
    weight_decay: float = 0.1


@dataclass
class ResourcesSpec:
    num_workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    max_failures: int = 1  # worker-group restarts (from the last checkpoint) before a stage fails
    deepspeed: DeepSpeedSpec = field(default_factory=DeepSpeedSpec)


@dataclass
class SearchDimSpec:
    """Exactly one of these: a grid of values, a random choice, or a range."""

    grid: list[Any] | None = None
    choice: list[Any] | None = None
    uniform: list[float] | None = None  # [low, high]
    loguniform: list[float] | None = None  # [low, high], low > 0


@dataclass
class SweepSpec:
    space: dict[str, SearchDimSpec] = field(default_factory=dict)  # dotted spec path -> dim
    metric: str = ""  # e.g. eval.arith.pass@4 or pretrain.entropy
    mode: str = "max"  # max | min
    # Draws of the choice/uniform/loguniform dimensions (seeded by the spec's seed); each
    # draw is an arm, crossed with the grid and run with every seed. Only with such a
    # dimension: without one, a draw repeats the same trials.
    num_samples: int = 1
    max_concurrent: int = 1
    # Every point of the grid with seeds seed, seed+1, ... (initialisation, data order,
    # sampling); results are aggregated over seeds.
    seeds: int = 1
    # The arm every other arm is compared with, paired by seed: e.g. {objective.beta: 0.0},
    # or nested, {objective: {beta: 0.0}}; matched by value (0 is 0.0)
    baseline: dict[str, Any] | None = None
    show: list[str] = field(default_factory=list)  # more metrics, each compared too


@dataclass
class WandbSpec:
    project: str | None = None  # default: the spec's name
    entity: str | None = None  # user or team; default: the API key's own
    group: str | None = None  # default: one group per pipeline run (apply or sweep trial)
    mode: str = "online"  # online | offline (`wandb sync` later) | disabled


@dataclass
class MlflowSpec:
    # http(s)://server, sqlite:///abs/path.db, file:///abs/dir or a plain path; default:
    # $MLFLOW_TRACKING_URI, else MLflow's own default
    tracking_uri: str | None = None
    experiment: str | None = None  # default: the spec's name


@dataclass
class LoggingSpec:
    """Experiment trackers: every stage that runs is one run in each. Not part of any stage key."""

    wandb: WandbSpec | None = None
    mlflow: MlflowSpec | None = None
    on_error: str = "fail"  # fail | warn: what a tracker unreachable at start does


@dataclass
class Spec:
    name: str = "rsrl"
    seed: int = 0
    workdir: str = "runs/${name}"
    model: ModelSpec = field(default_factory=ModelSpec)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    objective: ObjectiveSpec = field(default_factory=ObjectiveSpec)
    stages: StagesSpec = field(default_factory=StagesSpec)
    rl: RLSpec | None = None
    eval: EvalSpec | None = None
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    sweep: SweepSpec | None = None
    logging: LoggingSpec = field(default_factory=LoggingSpec)
    plugins: list[str] = field(default_factory=list)  # modules or .py files with verifiers


def rl_section(spec: Spec) -> RLSpec:
    """`spec.rl`, for code that runs only when the spec has it (the rl stage, its plan)."""
    assert spec.rl is not None, "the spec has no rl: section"
    return spec.rl


def eval_section(spec: Spec) -> EvalSpec:
    """`spec.eval`, for code that runs only when the spec has it (the eval stage, its plan)."""
    assert spec.eval is not None, "the spec has no eval: section"
    return spec.eval


def sweep_section(spec: Spec) -> SweepSpec:
    """`spec.sweep`, for code that runs only when the spec has it (rsrl sweep)."""
    assert spec.sweep is not None, "the spec has no sweep: section"
    return spec.sweep


def random_paths(sweep: SweepSpec) -> list[str]:
    """The dimensions drawn at random (choice, uniform, loguniform), not gridded."""
    return [path for path, dim in sweep.space.items() if dim.grid is None]


def baseline_point(sweep: SweepSpec) -> dict[str, Any]:
    """The baseline arm's value of each swept path that `sweep.baseline` gives one, whether
    it names the path dotted ({objective.beta: 0}) or nested ({objective: {beta: 0}})."""
    baseline = sweep.baseline or {}
    point = {}
    for path in sweep.space:
        node: Any = baseline
        if path in baseline:
            node = baseline[path]
        else:
            for part in path.split("."):
                node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node is not _MISSING:
            point[path] = node
    return point


_MISSING = object()


def value_key(value: Any) -> Any:
    """A hashable stand-in for a swept value that compares by value: YAML's 0 and 0.0 are
    one arm, and so are mappings with the same items in any order (json.dumps tells both
    apart)."""
    if isinstance(value, Mapping):
        return frozenset((str(k), value_key(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(value_key(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def nested_dataclass(cls: type, name: str) -> type | None:
    """The dataclass behind field `name` of `cls` (through Optional, List, Dict), else None."""
    hints = typing.get_type_hints(cls) if dataclasses.is_dataclass(cls) else {}
    tp = hints.get(name)
    while tp is not None and typing.get_origin(tp) is not None:
        tp = [a for a in typing.get_args(tp) if a is not type(None)][-1]
    return cast("type", tp) if tp is not None and dataclasses.is_dataclass(tp) else None
