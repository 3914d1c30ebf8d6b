"""Specs, plans and stage runs for the data tests: stages run as the pipeline runs them."""

from pathlib import Path

import pytest
import yaml

from rsrl.pipeline.plan import Plan, compile_plan
from rsrl.pipeline.registry import StageContext, resolve_stage_fn
from rsrl.spec.load import load_spec

TEST_VOCAB = 512


def make_plan(
    tmp_path: Path,
    data: list[dict],
    *,
    tokens: int = 20_000,
    seq_len: int = 64,
    seed: int = 0,
    name: str = "spec",
    reset_position_ids: bool = False,
    tokenizer: dict | None = None,
) -> Plan:
    """A plan whose pre-training stage reads `data` (tokenizer and data-pretrain stages)."""
    spec = {
        "name": name,
        "seed": seed,
        "workdir": str(tmp_path / name),
        "model": {"preset": "tiny-dense"},
        "tokenizer": tokenizer or {"kind": "bpe", "vocab_size": TEST_VOCAB},
        "stages": {
            "pretrain": {
                "data": data,
                "tokens": tokens,
                "seq_len": seq_len,
                "batch_tokens": seq_len,
                "reset_position_ids": reset_position_ids,
            }
        },
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return compile_plan(load_spec(path))


def run_stage(plan: Plan, name: str) -> Path:
    """Run one stage in this process, its inputs having run before; returns its directory."""
    stage = plan.stage(name)
    out_dir = stage.out_dir(plan.workdir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = {i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs}
    resolve_stage_fn(stage.kind)(StageContext(plan.spec, stage, out_dir, inputs))
    return out_dir


@pytest.fixture(scope="session")
def tokenizer_stage(tmp_path_factory) -> Path:
    """A tokenizer stage trained on the synthetic pre-training mixture."""
    tmp = tmp_path_factory.mktemp("tokenizer")
    plan = make_plan(tmp, [{"path": "synth://pretrain"}, {"path": "synth://midtrain"}])
    return run_stage(plan, "tokenizer")
