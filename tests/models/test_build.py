"""Models from the spec: Qwen3 / Qwen3-MoE configs, forward passes, seeds, HF round trip."""

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3MoeConfig

from rsrl.errors import SpecError
from rsrl.models.build import ROUTER_AUX_LOSS_COEF, build_model, model_config, resolve_shape
from rsrl.models.config import ModelSpec
from rsrl.models.moe import BiasedQwen3MoeConfig
from rsrl.models.presets import PAPER_VOCAB, PRESETS


def test_explicit_fields_override_the_preset():
    shape = resolve_shape(ModelSpec(preset="tiny-dense", vocab_size=512, num_layers=2))
    assert shape["vocab_size"] == 512 and shape["num_layers"] == 2
    assert shape["hidden_size"] == PRESETS["tiny-dense"]["hidden_size"]


def test_without_preset_or_arch_is_a_spec_error():
    with pytest.raises(SpecError, match="model.preset"):
        resolve_shape(ModelSpec(hidden_size=64))


@pytest.mark.parametrize("preset", ["paper-1b", "paper-4b", "paper-5b-a0.3b", "paper-10b-a0.5b"])
def test_paper_presets_have_the_paper_vocab_and_head_dim(preset):
    config = model_config(ModelSpec(preset=preset), rope_theta=1e6, max_seq_len=4096)
    assert config.vocab_size == PAPER_VOCAB and config.head_dim == 128
    assert config.rope_parameters["rope_theta"] == 1e6
    assert config.max_position_embeddings == 4096


def test_moe_config_exposes_router_settings():
    config = model_config(ModelSpec(preset="paper-10b-a0.5b"), rope_theta=1e4, max_seq_len=512)
    assert isinstance(config, Qwen3MoeConfig)
    assert (config.num_experts, config.num_experts_per_tok, config.moe_intermediate_size) == (
        384,
        12,
        320,
    )
    assert config.output_router_logits is False


@pytest.mark.parametrize(
    "spec, config_type, coef",
    [
        (ModelSpec(preset="tiny-moe"), Qwen3MoeConfig, ROUTER_AUX_LOSS_COEF),
        (ModelSpec(preset="tiny-moe", router_balance="bias"), BiasedQwen3MoeConfig, 0.0),
        (ModelSpec(preset="paper-10b-a0.5b"), BiasedQwen3MoeConfig, 0.0),  # bias by its preset
        (
            ModelSpec(preset="paper-10b-a0.5b", router_aux_loss_coef=0.01),
            BiasedQwen3MoeConfig,
            0.01,
        ),
        (ModelSpec(preset="paper-10b-a0.5b", router_balance="aux_loss"), Qwen3MoeConfig, 1e-3),
    ],
)
def test_the_router_balance_picks_the_config_and_the_balance_loss_weight(spec, config_type, coef):
    """Under bias the architecture carries the expert bias, and the loss is off unless set."""
    config = model_config(spec, rope_theta=1e4, max_seq_len=512)
    assert type(config) is config_type
    assert config.model_type == (
        "rsrl_qwen3_moe" if config_type is BiasedQwen3MoeConfig else "qwen3_moe"
    )
    assert config.router_aux_loss_coef == coef


@pytest.mark.parametrize(
    "preset,config_type", [("tiny-dense", Qwen3Config), ("tiny-moe", Qwen3MoeConfig)]
)
def test_tiny_presets_forward_and_backward_in_fp32(preset, config_type):
    model = build_model(ModelSpec(preset=preset), rope_theta=1e4, max_seq_len=64, seed=0)
    assert isinstance(model.config, config_type) and model.config.head_dim >= 32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    ids = torch.randint(0, model.config.vocab_size, (2, 32))
    out = model(input_ids=ids, labels=ids)
    out.loss.backward()
    assert out.logits.shape == (2, 32, model.config.vocab_size)
    assert torch.isfinite(out.loss)
    assert model.model.embed_tokens.weight.grad is not None


def test_moe_router_logits_and_aux_loss_when_asked():
    model = build_model(ModelSpec(preset="tiny-moe"), rope_theta=1e4, max_seq_len=64, seed=0)
    model.config.output_router_logits = True
    ids = torch.randint(0, 2048, (2, 16))
    out = model(input_ids=ids, labels=ids, output_router_logits=True)
    assert out.aux_loss is not None and torch.isfinite(out.aux_loss)
    assert len(out.router_logits) == model.config.num_hidden_layers


def test_same_seed_same_weights_and_global_rng_untouched():
    spec = ModelSpec(preset="tiny-dense")
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(spec, rope_theta=1e4, max_seq_len=64, seed=7)
    assert torch.equal(torch.rand(1), before)
    b = build_model(spec, rope_theta=1e4, max_seq_len=64, seed=7)
    c = build_model(spec, rope_theta=1e4, max_seq_len=64, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(
        sa["model.layers.0.mlp.up_proj.weight"], sc["model.layers.0.mlp.up_proj.weight"]
    )


@pytest.mark.parametrize("preset", ["tiny-dense", "tiny-moe"])
def test_hf_save_load_round_trip(tmp_path, preset):
    model = build_model(
        ModelSpec(preset=preset),
        rope_theta=5e5,
        max_seq_len=128,
        seed=0,
        eos_token_id=0,
        pad_token_id=2,
    ).eval()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(loaded) is type(model)
    assert loaded.config.rope_parameters["rope_theta"] == 5e5
    assert (loaded.config.eos_token_id, loaded.config.pad_token_id) == (0, 2)
    ids = torch.randint(0, 2048, (1, 24))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
