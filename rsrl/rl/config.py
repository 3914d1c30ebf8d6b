"""The `rl:` section: GRPO's knobs, from the prompts to the update (docs/rl.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rsrl.config import NOT_IN_KEY, Problems, check_choices
from rsrl.data.config import PromptSourceSpec
from rsrl.rl.rollout.config import RolloutSpec
from rsrl.verifiers.config import VerifierSpec

LossAgg = Literal["token-mean", "seq-mean-token-mean"]
AdvNorm = Literal["std", "none"]
# none | tis (weights min(pi_old / mu, cap)) | mis (drops samples outside [1 / cap, cap]);
# auto: tis with asynchronous rollouts (rl.max_staleness >= 1) at temperature 1, else none
Correction = Literal["auto", "none", "tis", "mis"]
Level = Literal["token", "sequence"]  # sequence: the ratio of the whole response
# MoE: the update routes each sampled token to the experts the engine chose for it (on);
# auto: on wherever the engine reports them (vLLM)
RoutingReplay = Literal["auto", "off", "on"]


@dataclass
class ClipSpec:
    eps_low: float = 0.2
    eps_high: float = 0.28  # clip-higher: a wider upper bound keeps exploration alive


@dataclass
class OffPolicySpec:
    """The correction for samples the trainer's policy pi_old did not draw: the engine's
    policy mu differs (a bf16 engine, other kernels). docs/rl.md says when to use which."""

    correction: Correction = "auto"
    level: Level = "token"
    cap: float = 2.0  # tis: the weights' upper bound; mis: ratios outside [1 / cap, cap] dropped

    def resolved(self, max_staleness: int, temperature: float) -> str:
        """The correction that runs: auto is tis for asynchronous rollouts, whose samples
        come from older weights, where the engines' log-probs are mu's (temperature 1)."""
        if self.correction != "auto":
            return self.correction
        return "tis" if max_staleness > 0 and temperature == 1.0 else "none"

    def check(self, temperature: float, path: str = "rl.off_policy") -> list[str]:
        p = Problems(path)
        check_choices(self, p)
        p.need(self.cap > 1, "cap", self.cap, "must be > 1 (the weights' bound, 1 / cap..cap)")
        p.need(
            self.correction in ("none", "auto") or temperature == 1.0,
            "correction",
            self.correction,
            "needs rl.rollout.temperature 1 (the engines report temperature-1 log-probs, mu's "
            "only at temperature 1)",
        )
        return p.lines


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
    loss_agg: LossAgg = "token-mean"
    adv_norm: AdvNorm = "std"
    mini_batches: int = 1  # optimizer updates per step; 1 is strictly on-policy (the paper)
    micro_batch_size: int = 8  # sequences per worker per forward pass
    # Instead: micro-batches filled up to this many padded tokens (rows x longest row) per
    # worker, sequences of similar length together; a longer sequence goes alone.
    micro_batch_tokens: int | None = None
    checkpoint_every: int = 10  # RL steps
    keep_checkpoints: int = field(default=2, metadata=NOT_IN_KEY)  # the newest ones kept
    # The RL curve: every `eval_every` steps (and before the first), the first
    # `eval_problems` problems of each eval suite, sampled as the suite says; 0 turns it off.
    eval_every: int = 0
    eval_problems: int = 32
    # Asynchronous rollouts: the engines sample up to this many steps ahead while the trainer
    # updates, so a group may come from weights this many updates old (rl.off_policy
    # corrects for it); 0 is the synchronous, strictly on-policy loop (the paper's).
    max_staleness: int = 0
    rollout: RolloutSpec = field(default_factory=RolloutSpec)
    off_policy: OffPolicySpec = field(default_factory=OffPolicySpec)
    routing_replay: RoutingReplay = "auto"

    def check(self, plugins: list[str], moe: bool, path: str = "rl") -> list[str]:
        p = Problems(path)
        p.lines += self.prompts.check(f"{path}.prompts")
        p.lines += self.verifier.check(f"{path}.verifier", plugins)
        p.at_least(self, ("steps", "prompts_per_step"), 1, strict=False)
        p.need(
            self.group_size >= 2,
            "group_size",
            self.group_size,
            "must be >= 2 (group-normalised advantages need several samples per prompt)",
        )
        p.at_least(self, ("lr",), 0, strict=True)
        p.at_least(self, ("weight_decay", "kl_coef", "max_resample_rounds"), 0, strict=False)
        c = Problems(f"{path}.clip")
        c.at_least(self.clip, ("eps_low", "eps_high"), 0, strict=False)
        p.lines += c.lines
        names = ("mini_batches", "micro_batch_size", "checkpoint_every", "keep_checkpoints")
        p.at_least(self, (*names, "eval_problems"), 1, strict=False)
        p.need(
            self.micro_batch_tokens is None or self.micro_batch_tokens >= 1,
            "micro_batch_tokens",
            self.micro_batch_tokens,
            "must be >= 1 (or unset: micro_batch_size sequences)",
        )
        p.need(self.eval_every >= 0, "eval_every", self.eval_every, "must be >= 0 (0 turns it off)")
        p.need(
            self.max_staleness >= 0,
            "max_staleness",
            self.max_staleness,
            "must be >= 0 (0: synchronous rollouts)",
        )
        check_choices(self, p)
        if self.routing_replay == "on":
            p.need(moe, "routing_replay", "on", "needs an MoE model (model.arch: moe)")
            p.need(
                self.rollout.engine == "vllm",
                "routing_replay",
                "on",
                "needs rl.rollout.engine: vllm (the engine that reports its routing)",
            )
        p.lines += self.rollout.check(f"{path}.rollout")
        p.lines += self.off_policy.check(self.rollout.temperature, f"{path}.off_policy")
        return p.lines

    def replays_routing(self) -> bool:
        """Whether the update reuses the engine's experts where a sample carries them."""
        return self.routing_replay != "off"

    def correction(self) -> str:
        """The off-policy correction that runs (rl.off_policy.correction, auto resolved)."""
        return self.off_policy.resolved(self.max_staleness, self.rollout.temperature)
