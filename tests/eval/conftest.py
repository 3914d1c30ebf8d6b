"""A real tokenizer stage directory and tiny HF checkpoints, built once for the eval tests."""

from pathlib import Path

import pytest

from rsrl.data.sources import Source
from rsrl.models.config import ModelSpec

TINY_MODEL = ModelSpec(
    preset="tiny-dense", vocab_size=512, hidden_size=64, num_layers=2, ffn_size=128
)


@pytest.fixture(scope="session")
def tokenizer_stage(tmp_path_factory) -> Path:
    """A tokenizer stage's directory (BPE on the heldout corpus, saved as the stage saves it)."""
    from rsrl.models.tokenizer import sample_texts, tokenizer_dir, train_bpe

    stage = tmp_path_factory.mktemp("tokenizer-stage")
    texts = sample_texts([Source(path="synth://heldout")], max_chars=100_000)
    train_bpe(texts, vocab_size=TINY_MODEL.vocab_size).save_pretrained(str(tokenizer_dir(stage)))
    return stage


def save_tiny_model(out: Path, tokenizer_stage: Path, seed: int, max_seq_len: int = 128) -> Path:
    """A freshly initialised tiny dense model as an HF directory (as stages export `hf/`)."""
    from rsrl.models.build import build_model
    from rsrl.models.tokenizer import load_tokenizer, special_token_ids

    tokenizer = load_tokenizer(tokenizer_stage)
    model = build_model(
        TINY_MODEL,
        rope_theta=10000.0,
        max_seq_len=max_seq_len,
        seed=seed,
        **special_token_ids(tokenizer),
    )
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def eval_stage_context(spec, tokenizer_stage: Path):
    """The eval stage of `spec` with tiny pretrain and rl models (seeds 0, 1) as its inputs."""
    from rsrl.pipeline.plan import compile_plan
    from rsrl.pipeline.registry import StageContext

    plan = compile_plan(spec)
    stage = plan.stage("eval")
    inputs = {name: plan.stage(name).out_dir(plan.workdir) for name in stage.inputs}
    inputs["tokenizer"] = tokenizer_stage
    for seed, name in enumerate(("pretrain", "rl")):
        save_tiny_model(inputs[name] / "hf", tokenizer_stage, seed=seed)
    return StageContext(spec=spec, stage=stage, out_dir=stage.out_dir(plan.workdir), inputs=inputs)
