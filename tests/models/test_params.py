"""Parameter counts on the meta device against instantiated models."""

import pytest

from rsrl.cli import main
from rsrl.models.build import build_model
from rsrl.models.config import ModelSpec
from rsrl.models.params import count_module_params, count_params
from rsrl.models.presets import PRESETS


def instantiated_total(spec: ModelSpec) -> int:
    model = build_model(spec, rope_theta=1e4, max_seq_len=64, seed=0)
    return sum(p.numel() for p in model.parameters())  # tied weights once


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec(preset="tiny-dense"),
        ModelSpec(preset="tiny-moe"),
        ModelSpec(preset="tiny-dense", tie_embeddings=False),
        ModelSpec(preset="tiny-moe", num_experts=4, experts_per_token=1),
    ],
)
def test_meta_total_matches_an_instantiated_model(spec):
    assert count_params(spec).total == instantiated_total(spec)


def test_dense_active_is_total():
    counts = count_params(ModelSpec(preset="tiny-dense"))
    embedding = PRESETS["tiny-dense"]["vocab_size"] * PRESETS["tiny-dense"]["hidden_size"]
    assert counts.active == counts.total
    assert counts.active_non_embedding == counts.total - embedding  # tied: counted once


def test_moe_active_equals_a_model_with_only_the_active_experts():
    # A model with E=k experts runs every expert: all its parameters are active. It differs
    # from the E-expert model only by the router rows of the E-k unused experts.
    shape = PRESETS["tiny-moe"]
    k, experts = shape["experts_per_token"], shape["num_experts"]
    small = ModelSpec(preset="tiny-moe", num_experts=k)
    router_rows = (experts - k) * shape["hidden_size"] * shape["num_layers"]
    assert count_params(ModelSpec(preset="tiny-moe")).active == (
        instantiated_total(small) + router_rows
    )


def test_count_module_params_scales_only_expert_weights():
    model = build_model(ModelSpec(preset="tiny-moe"), rope_theta=1e4, max_seq_len=64, seed=0)
    full = count_module_params(model)
    assert full.total == full.active == sum(p.numel() for p in model.parameters())


def test_paper_moe_presets_match_their_names():
    big = count_params(ModelSpec(preset="paper-10b-a0.5b"))
    assert 9.0e9 < big.total < 10.5e9
    assert 0.45e9 < big.active_non_embedding < 0.55e9
    small = count_params(ModelSpec(preset="paper-5b-a0.3b"))
    assert 4.5e9 < small.total < 5.5e9 and 0.22e9 < small.active_non_embedding < 0.33e9


def test_paper_dense_presets_match_their_names():
    assert 0.95e9 < count_params(ModelSpec(preset="paper-1b")).total < 1.2e9
    assert 3.8e9 < count_params(ModelSpec(preset="paper-4b")).total < 4.3e9


def test_rsrl_models_prints_every_preset(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
    assert "9.76B" in out and "519.10M" in out
