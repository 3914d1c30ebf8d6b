"""Training stages on real Ray Train + DeepSpeed workers (gloo, CPU), with tiny models.

The tokenizer and the pre-training data are prepared once for the module; each test then
runs the training stage with its own settings in its own stage directory.
"""

import json
import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.registry import StageContext, resolve_stage_fn
from rsrl.spec import load_spec
from rsrl.train.fit import fit
from rsrl.train.loop import train_worker
from rsrl.train.metrics import read_metrics
from rsrl.train.stage import make_train_job

REPO = Path(__file__).resolve().parents[2]
# Small enough for seconds per step on 2 cores; seq_len 64, 8 rows per optimizer step.
TINY = [
    "tokenizer.vocab_size=512",
    "model.vocab_size=512",
    "stages.midtrain=null",
    "rl=null",
    "eval=null",
    "stages.pretrain.tokens=40960",
    "stages.pretrain.seq_len=64",
    "stages.pretrain.batch_tokens=512",
    "stages.pretrain.micro_batch_size=2",
    "stages.pretrain.lr.warmup_steps=2",
    "stages.pretrain.lr.peak=3e-3",
    "stages.pretrain.log_every=1",
]


def context(spec, plan, name: str, out_dir: Path | None = None) -> StageContext:
    stage = plan.stage(name)
    return StageContext(
        spec=spec,
        stage=stage,
        out_dir=out_dir or stage.out_dir(plan.workdir),
        inputs={i: plan.stage(i).out_dir(plan.workdir) for i in stage.inputs},
    )


@pytest.fixture(scope="module")
def prepared(ray_session, tmp_path_factory):
    """(spec, plan) with the tokenizer and data-pretrain stages really run."""
    workdir = tmp_path_factory.mktemp("train")
    spec = load_spec(REPO / "specs" / "quickstart.yaml", [f"workdir={workdir}", *TINY])
    plan = compile_plan(spec)
    for name in ("tokenizer", "data-pretrain"):
        ctx = context(spec, plan, name)
        ctx.out_dir.mkdir(parents=True)
        resolve_stage_fn(plan.stage(name).kind)(ctx)
    return spec, plan


def train(
    prepared,
    tmp_path,
    *,
    workers: int = 1,
    steps: int = 20,
    zero: int = 2,
    objective: dict | None = None,
    persistence_threshold: int | None = None,
    checkpoint_every: int | None = None,
):
    spec, plan = prepared
    if checkpoint_every is not None:
        pretrain = replace(spec.stages.pretrain, checkpoint_every=checkpoint_every)
        spec = replace(spec, stages=replace(spec.stages, pretrain=pretrain))
    ds = replace(
        spec.resources.deepspeed,
        zero_stage=zero,
        param_persistence_threshold=persistence_threshold,
    )
    resources = replace(spec.resources, num_workers=workers, deepspeed=ds, max_failures=1)
    spec = replace(spec, resources=resources)
    if objective:
        spec = replace(spec, objective=replace(spec.objective, **objective))
    ctx = context(spec, plan, "pretrain", out_dir=tmp_path / "pretrain")
    return make_train_job(ctx, total_steps=steps), resources


def test_two_workers_zero2_nll_falls(prepared, tmp_path):
    job, resources = train(prepared, tmp_path, workers=2, steps=20)
    fit(job, resources, "zero2", train_worker)
    records = read_metrics(job.stage_dir)
    assert [r["step"] for r in records] == list(range(1, 21))
    assert records[-1]["nll"] < records[0]["nll"] - 0.5, (records[0]["nll"], records[-1]["nll"])
    for name in (
        "shaped_loss",
        "nll",
        "perplexity",
        "entropy",
        "local_entropy",
        "topk_mass",
        "tail_mass",
        "lr",
        "grad_norm",
        "tokens_per_s",
    ):
        assert name in records[-1]
    assert (job.stage_dir / "hf" / "config.json").exists()
    assert any((job.stage_dir / "tensorboard").iterdir())


def test_zero3_fused_linear_runs_and_exports(prepared, tmp_path):
    from transformers import AutoModelForCausalLM

    job, resources = train(
        prepared,
        tmp_path,
        workers=2,
        steps=4,
        zero=3,
        objective={"fused_head": True},
        persistence_threshold=0,  # ZeRO-3 partitions, and gathers, every tensor of the tiny model
    )
    fit(job, resources, "zero3", train_worker)
    records = read_metrics(job.stage_dir)
    assert len(records) == 4 and all(
        torch.isfinite(torch.tensor(r["shaped_loss"])) for r in records
    )
    model = AutoModelForCausalLM.from_pretrained(job.stage_dir / "hf")
    assert model.config.vocab_size == 512


# ZeRO-0 too: there DeepSpeed keeps no gradient norm and the loop reads its own.
@pytest.mark.parametrize("zero", [0, 2])
def test_cross_entropy_limit_matches_plain_pytorch(prepared, tmp_path, zero):
    from rsrl.data.loader import PackedLoader
    from rsrl.data.packed import PackedDataset
    from rsrl.models.tokenizer import load_tokenizer
    from rsrl.train.loop import load_lm

    job, resources = train(
        prepared,
        tmp_path,
        workers=1,
        steps=1,
        zero=zero,
        objective={
            "beta": 0.0,
            "topk": replace(prepared[0].objective.topk, lam_top=0.0, lam_tail=0.0),
        },
    )
    fit(job, resources, "ce", train_worker)
    logged = read_metrics(job.stage_dir)[0]

    # The same first step, in a plain loop: same model seed, same rows, cross-entropy.
    model = load_lm(job, load_tokenizer(job.tokenizer_dir))
    loader = PackedLoader(PackedDataset(job.data_dir), job.layout.micro_batch_size)
    losses = []
    for _ in range(job.layout.grad_accum):
        batch = loader.next_batch()
        logits = model(batch["input_ids"]).logits
        losses.append(F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten()))
    loss = torch.stack(losses).mean()
    loss.backward()
    expected_norm = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()]))
    assert logged["shaped_loss"] == pytest.approx(float(loss), abs=1e-5)
    assert logged["nll"] == pytest.approx(float(loss), abs=1e-5)
    assert logged["grad_norm"] == pytest.approx(expected_norm, rel=1e-4)  # before clipping


def _kill_a_worker_at(stage_dir: Path, step: int, killed: list) -> None:
    """Watch the metrics; once `step` is logged, SIGKILL one training worker process."""
    from ray._private.state import actors  # from the GCS: no dashboard needed

    deadline = time.time() + 240
    while time.time() < deadline:
        if any(r["step"] >= step for r in read_metrics(stage_dir)):
            workers = [
                a
                for a in actors().values()
                if a["State"] == "ALIVE" and "TrainWorker" in a["ActorClassName"]
            ]
            if workers:
                os.kill(workers[0]["Pid"], signal.SIGKILL)
                killed.append(workers[0]["Pid"])
                return
        time.sleep(0.05)


def test_killed_worker_resumes_from_checkpoint_on_the_same_trajectory(prepared, tmp_path):
    steps = 16
    base, resources = train(prepared, tmp_path / "base", steps=steps, checkpoint_every=4)
    fit(base, resources, "uninterrupted", train_worker)
    expected = {r["step"]: r["shaped_loss"] for r in read_metrics(base.stage_dir)}

    job, resources = train(prepared, tmp_path / "killed", steps=steps, checkpoint_every=4)
    killed: list = []
    killer = threading.Thread(target=_kill_a_worker_at, args=(job.stage_dir, 9, killed))
    killer.start()
    fit(job, resources, "killed", train_worker)  # restarts the worker (max_failures=1)
    killer.join()
    assert killed, "the worker was never killed"
    got = {r["step"]: r["shaped_loss"] for r in read_metrics(job.stage_dir)}
    assert sorted(got) == list(range(1, steps + 1))
    # fp32 on CPU, same seed and rows: the resumed trajectory is the uninterrupted one.
    for step in range(1, steps + 1):
        assert got[step] == pytest.approx(expected[step], abs=1e-5), step
    checkpoints = json.loads((job.stage_dir / "checkpoints" / "latest.json").read_text())
    assert checkpoints["step"] == steps


def test_moe_trains_with_router_balance_and_logs_expert_load(prepared, tmp_path):
    spec, plan = prepared
    moe = replace(spec.model, preset="tiny-moe", router_aux_loss_coef=0.01)
    job, resources = train((replace(spec, model=moe), plan), tmp_path, steps=3)
    fit(job, resources, "moe", train_worker)
    last = read_metrics(job.stage_dir)[-1]
    assert last["router_aux_loss"] > 0
    # MaxVio: the busiest expert's load / the mean load - 1 (0 = balanced, 3 = all on 2 of 8).
    for layer in range(4):
        assert 0.0 <= last[f"moe/maxvio/l{layer}"] <= 3.0
        assert 0.0 < last[f"moe/load_entropy/l{layer}"] <= 1.0
    assert last["moe/maxvio"] == max(last[f"moe/maxvio/l{i}"] for i in range(4))
    assert "moe/bias_min/l0" not in last  # aux_loss: no bias


def test_moe_bias_moves_towards_balance_and_reaches_the_hf_export(prepared, tmp_path):
    """router_balance bias: after every optimizer step each bias moves by exactly the rate
    (sign of the step's load against the mean), nothing else moves it, and the export's
    biases are the trained ones, in fp32."""
    from rsrl.models.build import load_pretrained
    from rsrl.models.moe import routers

    spec, plan = prepared
    moe = replace(spec.model, preset="tiny-moe", router_balance="bias", router_bias_rate=0.01)
    job, resources = train((replace(spec, model=moe), plan), tmp_path, steps=3)
    fit(job, resources, "moe-bias", train_worker)
    records = read_metrics(job.stage_dir)
    assert "router_aux_loss" not in records[-1]  # off under bias unless asked for
    for router in routers(load_pretrained(job.stage_dir / "hf")):
        bias = router.e_score_correction_bias
        assert bias.dtype == torch.float32
        # 3 steps of +-0.01 (or 0 at the mean): multiples of 0.01 within [-0.03, 0.03]
        assert bias.abs().max() <= 0.03 + 1e-6 and bias.abs().max() > 0
        torch.testing.assert_close(bias, (bias / 0.01).round() * 0.01)
    assert records[-1]["moe/bias_max/l0"] > records[-1]["moe/bias_min/l0"]
