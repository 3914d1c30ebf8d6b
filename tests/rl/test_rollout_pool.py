"""The apply's rollout pool on real Ray actors with the transformers engine: a borrower gets
the running actors when they can serve it, with its own checkpoint's weights loaded, and new
ones otherwise; stopping the pool stops them all."""

import pytest
import torch

from rsrl.rl.rollout.actors import RolloutGroup
from rsrl.rl.rollout.engine import make_engine
from rsrl.rl.rollout.pool import ActorConfig, start_pool, stop_pool
from tests.rl.test_rollout import PROMPTS, model_dirs, perturb, reference_model, tokenizer_dir

__all__ = ["model_dirs", "tokenizer_dir"]  # fixtures, shared with test_rollout

GREEDY = dict(n=1, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0)


def sampled(results) -> list[tuple[list[int], torch.Tensor]]:
    return [(c.token_ids, torch.tensor(c.logprobs)) for group in results for c in group]


def assert_same(results, expected) -> None:
    for (ids, logprobs), (want_ids, want_logprobs) in zip(sampled(results), sampled(expected)):
        assert ids == want_ids
        torch.testing.assert_close(logprobs, want_logprobs, atol=1e-4, rtol=0)


def actors(model_dir, tokenizer_dir, cpus: float) -> ActorConfig:
    """One transformers actor with `cpus` CPUs."""
    return ActorConfig("hf", str(model_dir), str(tokenizer_dir), 1, cpus, 0)


def is_dead(actor) -> bool:
    import ray

    try:
        ray.get(actor.ready.remote(), timeout=30)
    except ray.exceptions.RayActorError:
        return True
    return False


def test_a_pool_lends_running_actors_with_the_borrowers_weights(
    ray_session, model_dirs, tokenizer_dir, tmp_path
):
    import ray

    base = model_dirs["tiny-dense"]
    tuned = reference_model(base)
    tuned_weights = perturb(tuned, seed=1)  # as RL would leave them
    tuned.save_pretrained(str(tmp_path / "tuned"))
    expected = {
        name: make_engine("hf", path, tokenizer_dir).generate(PROMPTS, **GREEDY)
        for name, path in (("base", base), ("tuned", tmp_path / "tuned"))
    }
    base_logprobs = torch.cat([lp for _, lp in sampled(expected["base"])])
    tuned_logprobs = torch.cat([lp for _, lp in sampled(expected["tuned"])])
    if base_logprobs.shape == tuned_logprobs.shape:  # the two models must be told apart
        assert (base_logprobs - tuned_logprobs).abs().max() > 1e-3

    pool = start_pool()
    try:
        rl = RolloutGroup(actors(base, tokenizer_dir, 0.25), pool=pool, threads=2)
        first = list(rl.actors)
        # Its own torch threads, not Ray's one per reserved CPU (rounded up from 0.25).
        assert ray.get(first[0].__ray_call__.remote(lambda _: torch.get_num_threads())) == 2
        rl.sync_weights(tuned_weights)
        assert_same(rl.generate(PROMPTS, **GREEDY), expected["tuned"])
        rl.shutdown()  # hands the actors back, running
        assert not is_dead(first[0])

        # Same engine, resources and architecture: the same actors, with base's weights again.
        ev = RolloutGroup(actors(base, tokenizer_dir, 0.25), pool=pool)
        assert ev.actors == first
        # This borrower keeps to the actor's reservation: one thread again.
        assert ray.get(first[0].__ray_call__.remote(lambda _: torch.get_num_threads())) == 1
        assert_same(ev.generate(PROMPTS, **GREEDY), expected["base"])
        ev.load_checkpoint(tmp_path / "tuned")
        assert_same(ev.generate(PROMPTS, **GREEDY), expected["tuned"])
        ev.shutdown()

        # Other resources: new actors in place of the old.
        wider = RolloutGroup(actors(base, tokenizer_dir, 0.5), pool=pool)
        assert wider.actors != first and is_dead(first[0])
        assert_same(wider.generate(PROMPTS, **GREEDY), expected["base"])
        # A dead actor is replaced, not lent.
        ray.kill(wider.actors[0])
        again = RolloutGroup(actors(base, tokenizer_dir, 0.5), pool=pool)
        assert again.actors != wider.actors
        assert_same(again.generate(PROMPTS, **GREEDY), expected["base"])
        last = list(again.actors)
        again.shutdown()
    finally:
        stop_pool(pool)
    assert is_dead(last[0])


@pytest.mark.parametrize("changed", ["engine_name", "tokenizer_dir", "actors"])
def test_actor_configs_share_actors_only_when_all_but_the_weights_agree(
    model_dirs, tokenizer_dir, tmp_path, changed
):
    from dataclasses import replace

    config = ActorConfig("hf", str(model_dirs["tiny-dense"]), str(tokenizer_dir), 1, 1.0, 0, {})
    copy = tmp_path / "copy"
    reference_model(model_dirs["tiny-dense"]).save_pretrained(str(copy))
    assert config.shares_actors_with(replace(config, model_dir=str(copy)))
    assert not config.shares_actors_with(replace(config, model_dir=str(model_dirs["tiny-moe"])))
    other = {"engine_name": "vllm", "tokenizer_dir": str(copy), "actors": 2}[changed]
    assert not config.shares_actors_with(replace(config, **{changed: other}))


def test_the_rl_stage_prepares_the_actors_its_sampler_then_borrows(
    ray_session, model_dirs, tokenizer_dir
):
    import ray

    from rsrl.spec import load_spec
    from tests.rl.test_rl_threads import QUICKSTART

    rl = load_spec(QUICKSTART, ["rl.rollout.engine=hf", "rl.rollout.cpus_per_actor=0.25"]).rl
    base = model_dirs["tiny-dense"]
    pool = start_pool()
    try:
        # As the rl stage does, then its trainer's rank 0.
        ray.get(pool.prepare.remote(ActorConfig.for_rollout(rl.rollout, base, "float32")))
        prepared = ray.get(pool.__ray_call__.remote(lambda p: p.actors))
        assert len(prepared) == 1
        ray.get(pool.prepare.remote(ActorConfig.for_rollout(rl.rollout, base, "float32")))
        group = RolloutGroup.for_spec(rl.rollout, base, "float32", pool=pool)  # already there
        assert group.actors == prepared == ray.get(pool.__ray_call__.remote(lambda p: p.actors))
        group.shutdown()
    finally:
        stop_pool(pool)
    assert is_dead(prepared[0])
