"""The MoE router balance settings of `model:`, checked by the spec."""

import subprocess
import sys
from pathlib import Path

import pytest

from rsrl.cli import main
from rsrl.models.config import ROUTER_BIAS_RATE, ModelSpec
from rsrl.models.presets import PRESETS
from rsrl.spec import SpecError, load_spec

BASE = Path(__file__).parent / "base.yaml"
MOE_PRESETS = [name for name, shape in PRESETS.items() if shape["arch"] == "moe"]


def test_an_unknown_router_balance_exits_2_naming_the_field_and_the_choices():
    result = subprocess.run(
        [sys.executable, "-m", "rsrl.cli", "validate", str(BASE), "model.router_balance=typo"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "model.router_balance: unknown value 'typo'; allowed: aux_loss, bias" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.router_bias_rate=0"], "model.router_bias_rate: must be > 0"),
        (["model.router_bias_rate=-1e-3"], "model.router_bias_rate: must be > 0"),
        (
            ["model.preset=tiny-moe", "model.router_bias_rate=1e-3"],  # aux_loss by default
            "model.router_bias_rate: needs model.router_balance: bias",
        ),
        (
            ["model.preset=paper-5b-a0.3b", "model.router_balance=aux_loss"]
            + ["model.router_bias_rate=1e-3"],
            "model.router_bias_rate: needs model.router_balance: bias",
        ),
        (["model.router_aux_loss_coef=-0.1"], "model.router_aux_loss_coef: must be >= 0"),
    ],
)
def test_router_settings_out_of_range_are_rejected(overrides, message):
    with pytest.raises(SpecError, match=message):
        load_spec(BASE, overrides)


@pytest.mark.parametrize("preset", MOE_PRESETS)
def test_the_paper_moe_presets_balance_by_bias_and_tiny_moe_by_the_loss(preset):
    want = "aux_loss" if preset == "tiny-moe" else "bias"
    assert ModelSpec(preset=preset).resolved_router_balance() == want
    spec = load_spec(BASE, [f"model.preset={preset}"])
    assert spec.model.resolved_router_balance() == want
    other = "bias" if want == "aux_loss" else "aux_loss"
    assert ModelSpec(preset=preset, router_balance=other).resolved_router_balance() == other


def test_a_bias_rate_is_taken_where_the_preset_balances_by_bias():
    assert set(MOE_PRESETS) == {"tiny-moe", "paper-5b-a0.3b", "paper-10b-a0.5b"}
    spec = load_spec(BASE, ["model.preset=paper-10b-a0.5b", "model.router_bias_rate=0.002"])
    assert spec.model.resolved_router_bias_rate() == 0.002
    assert load_spec(BASE, ["model.preset=paper-10b-a0.5b"]).model.router_bias_rate is None
    assert ModelSpec(preset="paper-10b-a0.5b").resolved_router_bias_rate() == ROUTER_BIAS_RATE
    assert ROUTER_BIAS_RATE == 1e-3
    tiny = load_spec(BASE, ["model.preset=tiny-moe", "model.router_balance=bias"])
    assert tiny.model.resolved_router_balance() == "bias"


def test_rsrl_models_shows_each_moe_presets_experts(capsys):
    """What `rsrl models` prints: arch, k/experts and the MoE balancing per preset."""
    assert main(["models"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    header = ["preset", "arch", "layers", "hidden", "heads/kv", "experts", "balance"]
    assert rows["preset"][:7] == header
    for name, shape in PRESETS.items():
        experts = (
            f"{shape['experts_per_token']}/{shape['num_experts']}"
            if shape["arch"] == "moe"
            else "-"
        )
        assert rows[name][1] == shape["arch"] and rows[name][5] == experts
        balance = ModelSpec(preset=name).resolved_router_balance() if experts != "-" else "-"
        assert rows[name][6] == balance


@pytest.mark.parametrize(
    "setting", ["router_balance=bias", "router_bias_rate=0.01", "router_aux_loss_coef=0.1"]
)
def test_moe_router_settings_on_a_dense_model_are_refused(setting):
    field = setting.split("=")[0]
    with pytest.raises(SpecError, match=f"model.{field}: is for MoE models"):
        load_spec(BASE, [f"model.{setting}"])
