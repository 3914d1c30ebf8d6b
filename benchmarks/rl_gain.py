"""Does RL measurably raise accuracy? The RL model against the model RL started from, on fresh
problems that neither RL nor the eval suites ever saw.

    .venv/bin/python benchmarks/rl_gain.py specs/quickstart.yaml [k=v ...] [--task count]

Reads the run the spec (with overrides) points at, which must have finished its rl stage.
Draws `--problems` distinct problems of `--task` from synth_arith's eval hash split (so
none is an RL prompt) that are not in eval-arith (so none is an eval problem), samples
`--samples` completions per problem at temperature 1 from both models through one vLLM
rollout actor (same seeds, weights swapped), and prints the mean reward before and after,
the paired difference, its standard error and z.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsrl.data import synth, synth_arith  # noqa: E402
from rsrl.eval.config import SuiteSpec  # noqa: E402
from rsrl.eval.uncertainty import paired_difference, standard_error  # noqa: E402
from rsrl.verifiers.config import VerifierSpec  # noqa: E402

TASKS = {make(random.Random(0)).task: make for make in synth_arith.LEVELS}


def fresh_problems(task: str, count: int, seed: int) -> list[dict]:
    """`count` distinct problems of `task` from the eval split, none of them in eval-arith."""
    taken = {r["prompt"] for r in synth.generate("eval-arith")}
    rng, found = random.Random(f"rl-gain:{seed}"), {}
    for _ in range(count * 2000):
        problem = TASKS[task](rng)
        if synth_arith.is_eval_question(problem.question) and problem.prompt not in taken:
            found.setdefault(problem.prompt, problem.record())
            if len(found) == count:
                return list(found.values())
    raise SystemExit(f"only {len(found)} fresh '{task}' problems found; ask for fewer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--task", default="count", choices=sorted(TASKS))
    parser.add_argument("--problems", type=int, default=256)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    import ray

    from rsrl.eval.suite import run_suite
    from rsrl.models.tokenizer import load_tokenizer
    from rsrl.pipeline.plan import compile_plan
    from rsrl.rl.rollout.actors import RolloutGroup
    from rsrl.rl.rollout.pool import ActorConfig
    from rsrl.spec import load_spec
    from rsrl.verifiers import load_verifier

    plan = compile_plan(load_spec(args.spec, args.overrides))
    rl = plan.stage("rl")
    before_dir = plan.stage(rl.inputs[-1]).out_dir(plan.workdir) / "hf"
    after_dir = rl.out_dir(plan.workdir) / "hf"
    if not after_dir.is_dir():
        raise SystemExit(f"{after_dir} does not exist: run `rsrl apply {args.spec}` first")
    problems = fresh_problems(args.task, args.problems, args.seed)
    suite = SuiteSpec(
        name=f"fresh-{args.task}",
        verifier=VerifierSpec(name="math"),
        n_samples=args.samples,
        k=[1],
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=plan.spec.rl.rollout.max_new_tokens,
    )
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    tokenizer = load_tokenizer(plan.stage("tokenizer").out_dir(plan.workdir))
    verify = load_verifier("math", [])
    engine = plan.spec.rl.rollout.engine
    group = RolloutGroup(ActorConfig(engine, str(before_dir), str(before_dir), 1, 1, 0))
    try:
        before = run_suite(group, tokenizer, suite, problems, verify, args.seed)
        group.load_checkpoint(after_dir)
        after = run_suite(group, tokenizer, suite, problems, verify, args.seed)
    finally:
        group.shutdown()
    metric = f"avg@{args.samples}"
    pre, post = before.values[metric], after.values[metric]
    gain = paired_difference(pre, post)
    print(
        f"{len(problems)} fresh '{args.task}' problems x {args.samples} samples, "
        f"temperature 1 ({before_dir.parent.name} -> {after_dir.parent.name})"
    )
    print(f"before RL  {metric} {sum(pre) / len(pre):.4f} ± {standard_error(pre):.4f}")
    print(f"after RL   {metric} {sum(post) / len(post):.4f} ± {standard_error(post):.4f}")
    print(
        f"difference {gain['mean']:+.4f} ± {gain['se']:.4f} (paired by problem), "
        f"z = {gain['z']:.2f}"
    )


if __name__ == "__main__":
    main()
