"""The `objective:` section of a spec: the reward-shaped loss's knobs (docs/objective.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast

from rsrl.config import Problems, check_choices

ImplName = Literal["auto", "reference", "triton"]  # auto: Triton on CUDA, the reference elsewhere
PositiveForm = Literal["product", "exponent"]


@dataclass
class TopKSpec:
    k: int = 100  # size of K_t, the high-ranking set of each position
    lam_top: float = 0.0  # reward of negatives inside K_t (lambda-tilde)
    lam_tail: float = 0.0  # reward of negatives outside K_t (lambda-hat)


@dataclass
class ObjectiveSpec:
    beta: float = 0.0  # positive-reward exponent: < 0 sharpens, > 0 flattens
    positive_form: PositiveForm = "product"
    topk: TopKSpec = field(default_factory=TopKSpec)
    impl: ImplName = "auto"  # the kernels (auto: Triton on CUDA)
    # The LM head and the loss in one chunked pass that never holds the [tokens, vocab]
    # logits (large vocabularies); runs the `impl` kernels. Training stages only: RL needs logits.
    fused_head: bool = False

    def check(self, path: str = "objective") -> list[str]:
        p = Problems(path)
        check_choices(self, p)
        p.need(self.topk.k >= 1, "topk.k", self.topk.k, "must be >= 1")
        if bound := beta_bound(self.positive_form, self.beta):
            p.add("beta", f"{bound}, got {self.beta!r}")
        return p.lines

    def overridden_by(self, keys: dict[str, Any] | None) -> ObjectiveSpec:
        """This objective with a training stage's `objective:` keys laid over it."""
        from omegaconf import OmegaConf

        if not keys:
            return self
        merged = OmegaConf.merge(OmegaConf.structured(self), keys)
        return cast(ObjectiveSpec, OmegaConf.to_object(merged))


def beta_bound(positive_form: str, beta: float) -> str | None:
    """The bound `beta` breaks for `positive_form` (its gradient would be unbounded), or None."""
    if positive_form == "product" and beta <= -1:
        return (
            "must be > -1 with positive_form product (the gradient scales like "
            "(1 - p)^(1 + beta), unbounded at beta <= -1)"
        )
    if positive_form == "exponent" and beta < -1:
        return (
            "must be >= -1 with positive_form exponent (w_x grows like "
            "exp((1 - p)^(1 + beta)) as p -> 1, unbounded at beta < -1)"
        )
    return None
