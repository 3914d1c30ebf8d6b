"""Which stage keys change for which edits of the spec."""

from pathlib import Path

import pytest

from rsrl.pipeline.plan import compile_plan
from rsrl.spec import load_spec

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"
QUICKSTART_MOE = QUICKSTART.with_name("quickstart-moe.yaml")
ORDER = [
    "tokenizer",
    "data-pretrain",
    "pretrain",
    "data-midtrain",
    "midtrain",
    "rl",
    "eval",
    "report",
]


def keys(*overrides: str, spec: Path = QUICKSTART) -> dict[str, str]:
    return {s.name: s.key for s in compile_plan(load_spec(spec, overrides)).stages}


def changed(*overrides: str) -> set[str]:
    base, new = keys(), keys(*overrides)
    return {name for name in base if base[name] != new[name]}


def test_stages_in_dependency_order():
    assert list(keys()) == ORDER


def test_keys_are_deterministic():
    assert keys() == keys()


@pytest.mark.parametrize(
    "override, expected",
    [
        ("rl.group_size=16", {"rl", "eval", "report"}),
        ("rl.rollout.temperature=0.9", {"rl", "eval", "report"}),
        ("objective.beta=0.5", {"pretrain", "midtrain", "rl", "eval", "report"}),
        ("objective.topk.lam_tail=0.0", {"pretrain", "midtrain", "rl", "eval", "report"}),
        ("objective.topk.k=50", {"pretrain", "midtrain", "rl", "eval", "report"}),
        ("stages.midtrain.lr.peak=1e-3", {"midtrain", "rl", "eval", "report"}),
        ("stages.midtrain.tokens=150000", {"data-midtrain", "midtrain", "rl", "eval", "report"}),
        # The quickstart's RL curve samples the eval suites: they are part of the rl stage's key.
        ("eval.suites.0.n_samples=32", {"rl", "eval", "report"}),
        ("rl.eval_problems=8", {"rl", "eval", "report"}),
        ("stages.pretrain.cpus_per_worker=1", set()),
        ("tokenizer.vocab_size=1024", set(ORDER)),
        ("seed=1", set(ORDER)),
        ("stages.pretrain.log_every=1", set()),
        ("rl.keep_checkpoints=5", set()),
        ("rl.rollout.weight_sync=object_store", set()),
        ("rl.rollout.sync_bucket_mb=64", set()),
        ("stages.pretrain.micro_batch_size=2", set()),
        ("stages.pretrain.checkpoint_every=7", set()),
        ("rl.checkpoint_every=3", {"rl", "eval", "report"}),
        ("rl.weight_decay=0.1", {"rl", "eval", "report"}),
        ("rl.rollout.dtype=bfloat16", {"rl", "eval", "report"}),
        ("rl.rollout.dtype=float32", set()),  # what auto is under fp32
        ("rl.off_policy.correction=tis", {"rl", "eval", "report"}),
        ("rl.off_policy.correction=none", set()),  # what auto is with synchronous rollouts
        ("rl.max_staleness=1", {"rl", "eval", "report"}),
        ("resources.num_workers=2", set()),
    ],
)
def test_an_edit_changes_exactly_its_downstream_keys(override, expected):
    assert changed(override) == expected


def test_without_the_rl_curve_an_eval_edit_reruns_only_eval():
    base, new = keys("rl.eval_every=0"), keys("rl.eval_every=0", "eval.suites.0.n_samples=32")
    assert {name for name in base if base[name] != new[name]} == {"eval", "report"}


def test_stage_objective_override_changes_only_that_stage_onward():
    assert changed("stages.midtrain.objective={beta: 0.5}") == {"midtrain", "rl", "eval", "report"}


def test_absent_stages_are_skipped():
    plan = compile_plan(load_spec(QUICKSTART, ["stages.midtrain=null", "rl=null"]))
    assert [s.name for s in plan.stages] == [
        "tokenizer",
        "data-pretrain",
        "pretrain",
        "eval",
        "report",
    ]
    # eval reads the data stages too: it reports held-out overlap with their corpora.
    assert plan.stage("eval").inputs == ("tokenizer", "data-pretrain", "pretrain")


def test_plan_shows_resources_per_stage():
    plan = compile_plan(
        load_spec(QUICKSTART, ["resources.num_workers=4", "resources.gpus_per_worker=1"])
    )
    # The quickstart's training stages take both cores; RL's trainer keeps one.
    assert plan.stage("pretrain").resources.describe() == "4 x (2 CPU, 1 GPU)"
    assert plan.stage("rl").resources.describe() == "4 x (1 CPU, 1 GPU) + 1 x (1 CPU)"


def test_unset_optional_fields_do_not_enter_the_keys():
    base = keys(spec=QUICKSTART_MOE)
    assert keys("model.router_aux_loss_coef=null", spec=QUICKSTART_MOE) == base  # as by default
    assert (
        keys("model.router_aux_loss_coef=0.01", spec=QUICKSTART_MOE)["pretrain"] != base["pretrain"]
    )


def test_a_worker_larger_than_every_node_is_refused_before_anything_runs():
    from rsrl.pipeline.apply import ClusterTooSmall, check_fits

    stages = list(compile_plan(load_spec(QUICKSTART)).stages)  # pretrain: 1 x (2 CPU)
    two_one_cpu_nodes = [{"Alive": True, "Resources": {"CPU": 1.0}}] * 2
    with pytest.raises(
        ClusterTooSmall,
        match=r"'pretrain' asks for workers of 2 CPU.*has 1 CPU"
        r".*stages.pretrain.cpus_per_worker",
    ):
        check_fits(stages, two_one_cpu_nodes)
    check_fits(stages, [{"Alive": True, "Resources": {"CPU": 2.0}}])  # fits: no error
    dead = [{"Alive": False, "Resources": {"CPU": 8.0}}, {"Alive": True, "Resources": {"CPU": 1.0}}]
    with pytest.raises(ClusterTooSmall):
        check_fits(stages, dead)
