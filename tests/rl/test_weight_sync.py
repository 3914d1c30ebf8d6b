"""Weight sync, collective against object store, on real Ray Train + DeepSpeed trainers and
real rollout actors; fingerprints, timeouts and dead actors on the cheap transformers engine.

One trainer run covers the matrix: two gloo workers, ZeRO-3 on the tiny MoE model with
transformers engines, then ZeRO-2 on the tiny dense model with vLLM engines; each time the
collective group (two transformers actors, one vLLM actor; 1 MB buckets, so several) and one
actor through the object store sync after every one of a few optimizer steps. Afterwards
both leave bit-identical weights and sample identical completions, log-probabilities
included.
"""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from rsrl.rl.rollout.actors import RolloutGroup
from rsrl.rl.rollout.engine import make_engine
from rsrl.rl.rollout.fingerprint import WeightSyncError, check_fingerprints, fingerprint
from rsrl.rl.rollout.pool import ActorConfig
from rsrl.train.config import DeepSpeedSpec, ResourcesSpec
from rsrl.train.fit import fit
from tests.rl.test_rollout import PROMPTS, model_dirs, reference_model, tokenizer_dir

__all__ = ["model_dirs", "tokenizer_dir"]  # fixtures, shared with test_rollout

UPDATES = 3
SAMPLING = dict(n=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=3)
CASES = (("tiny-moe", 3, "hf"), ("tiny-dense", 2, "vllm"))


def _engine_weights(group: RolloutGroup) -> list[dict[str, torch.Tensor]]:
    import ray

    return ray.get(
        [a.__ray_call__.remote(lambda w: w.engine.model.state_dict()) for a in group.actors]
    )


def _train_step(policy, rank: int, step: int) -> None:
    generator = torch.Generator().manual_seed(100 * step + rank)
    ids = torch.randint(0, 512, (2, 24), generator=generator)
    out = policy(ids, torch.ones_like(ids), ids, 1.0)
    policy.backward(-(out.logp * out.mask).sum() / out.mask.sum())
    policy.step()


def sync_worker(job, rank: int, report=None) -> None:
    """Each case: DeepSpeed on two workers; rank 0 syncs both groups after every update."""
    import deepspeed
    from transformers import AutoModelForCausalLM

    from rsrl.rl.loop import weight_stream
    from rsrl.rl.policy import PolicyLM
    from rsrl.train.batches import BatchLayout
    from rsrl.train.ds_config import deepspeed_config
    from rsrl.train.optimizer import build_optimizer

    for preset, zero, engine in CASES:
        model_dir = job.model_dirs[preset]
        module = PolicyLM(AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32))
        config = deepspeed_config(
            # threshold 0: ZeRO-3 partitions, and gathers, every tensor of the tiny models
            DeepSpeedSpec(zero_stage=zero, weight_decay=0.0, param_persistence_threshold=0),
            BatchLayout(micro_batch_size=2, grad_accum=1, world_size=2),
        )
        optimizer = build_optimizer(module, 0.0, offload=False)
        policy, *_ = deepspeed.initialize(model=module, optimizer=optimizer, config=config)
        for param_group in policy.optimizer.param_groups:
            param_group["lr"] = 1e-3
        groups = (
            [
                RolloutGroup(
                    ActorConfig(engine, str(model_dir), str(job.tokenizer_dir), actors, 0.25, 0),
                    **sync,
                )
                for actors, sync in (
                    # two collective engines on hf; one on vLLM, whose start costs ~20 s
                    (2 if engine == "hf" else 1, dict(weight_sync="collective", sync_bucket_mb=1)),
                    (1, dict(weight_sync="object_store")),
                )
            ]
            if rank == 0
            else []
        )
        # vLLM seeds each prompt: its samples do not depend on the split over actors;
        # the transformers engine samples one batch, so one prompt (on one actor).
        prompts = PROMPTS if engine == "vllm" else PROMPTS[:1]
        before = groups[0].generate(prompts, **SAMPLING) if groups else None
        for step in range(UPDATES):
            _train_step(policy, rank, step)
            for i in range(2):
                stream = weight_stream(policy.module.lm, 2**20)
                assert len(stream.plan) > 2  # 1 MB buckets: streamed, not sent whole
                if groups:
                    assert groups[i].sync_weights(stream) > 0
                else:  # the other worker takes part in each bucket's gather
                    for _ in stream.buckets:
                        pass
        if groups:
            collective, object_store = groups
            assert collective.sync_group is not None and object_store.sync_group is None
            after = collective.generate(prompts, **SAMPLING)
            assert after == object_store.generate(prompts, **SAMPLING), preset
            assert after != before, f"{preset}: the syncs changed nothing"
            if engine == "hf":  # vLLM keeps its CPU weights packed, unreadable
                first, *others = _engine_weights(collective) + _engine_weights(object_store)
                for other in others:
                    assert all(torch.equal(first[n], other[n]) for n in first), preset
            for group in groups:
                group.shutdown()


def test_collective_and_object_store_leave_identical_engines(
    ray_session, model_dirs, tokenizer_dir, tmp_path
):
    job = SimpleNamespace(stage_dir=tmp_path, model_dirs=model_dirs, tokenizer_dir=tokenizer_dir)
    resources = ResourcesSpec(num_workers=2, cpus_per_worker=0.5, max_failures=0)
    fit(job, resources, run_name="weight-sync", worker=sync_worker)


def test_a_corrupted_tensor_is_named_by_its_fingerprint(model_dirs, tokenizer_dir):
    """As if a transport delivered one wrong element: the engine holds it, and says so."""
    engine = make_engine("hf", model_dirs["tiny-dense"], tokenizer_dir)
    weights = reference_model(model_dirs["tiny-dense"]).state_dict()
    sent = {name: fingerprint(t) for name, t in weights.items()}
    check_fingerprints(sent, engine.load_weights(weights), "engine")  # a faithful load passes

    name = "model.layers.1.mlp.up_proj.weight"
    corrupted = {**weights, name: weights[name].clone()}
    corrupted[name][0, 0] += 1e-3
    with pytest.raises(WeightSyncError, match=f"'{name}'.*stale or corrupted"):
        check_fingerprints(sent, engine.load_weights(corrupted), "engine")
    partial = {n: t for n, t in weights.items() if n != "model.norm.weight"}
    with pytest.raises(WeightSyncError, match="did not load 'model.norm.weight'"):
        check_fingerprints(sent, engine.load_weights(partial.items()), "engine")


def test_a_sync_past_its_timeout_or_to_a_dead_actor_fails_clearly(
    ray_session, model_dirs, tokenizer_dir
):
    import ray

    model_dir = model_dirs["tiny-dense"]
    weights = reference_model(model_dir).state_dict()
    # Both groups made first, so their actors start side by side.
    config = ActorConfig("hf", str(model_dir), str(tokenizer_dir), 1, 0.25, 0)
    hasty = RolloutGroup(config, weight_sync="object_store", sync_timeout_s=1e-3)
    group = RolloutGroup(replace(config, actors=2), sync_timeout_s=5)
    try:
        with pytest.raises(WeightSyncError, match=r"sync_timeout_s=0.001s"):
            hasty.sync_weights(weights)
        group.sync_weights(weights)  # forms the group, syncs, verifies
        assert group.sync_group is not None  # auto picks collective on CPU
        ray.kill(group.actors[1])
        with pytest.raises(WeightSyncError, match="died|failed"):
            group.sync_weights(weights)
    finally:
        hasty.shutdown()
        group.shutdown()


def test_weight_sync_settings_leave_the_rl_stage_key_alone(tmp_path):
    from rsrl.pipeline.plan import compile_plan
    from rsrl.spec import load_spec

    quickstart = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"

    def rl_key(*overrides: str) -> str:
        return (
            compile_plan(load_spec(quickstart, [f"workdir={tmp_path}", *overrides])).stage("rl").key
        )

    assert rl_key() == rl_key(
        "rl.rollout.weight_sync=object_store",
        "rl.rollout.sync_bucket_mb=64",
        "rl.rollout.sync_timeout_s=30",
    )
    assert rl_key() != rl_key("rl.rollout.max_new_tokens=9")  # what is sampled still counts
