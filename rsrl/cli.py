"""The `rsrl` command line: validate, plan and apply a spec.

Exit codes: 0 success, 1 a run failed (or the workdir is busy), 2 a mistake in the spec, the
command line or the data a stage reads. User mistakes print what was wrong and how to fix it,
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rsrl.errors import SpecError

if TYPE_CHECKING:  # both import Ray: only the commands that run stages load them
    from rsrl.pipeline.apply import StageFailed, StageOutcome

EXIT_FAILED, EXIT_USAGE = 1, 2
FAILURE_TAIL = 20  # lines of a failed stage's log shown under its error
SWEEP_LOG = "sweep.log"  # in the sweep's directory: Ray's start-up, Ray's own lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="rsrl: %(message)s")
    try:
        return args.run(args)
    except SpecError as err:
        print(f"rsrl: the spec has {len(err.problems)} problem(s):", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("rsrl: interrupted; finished stages are kept, `rsrl apply` resumes", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rsrl", description="Reward-shaped pre-training followed by RL, from one YAML spec."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def with_spec(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("spec", help="path to the YAML spec")
        p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. objective.beta=-0.25")
        return p

    p = with_spec("validate", "check a spec and exit 2 on any mistake")
    p.add_argument("--print", action="store_true", help="print the resolved spec as YAML")
    p.set_defaults(run=_validate)

    p = with_spec("plan", "show the stages, their keys and what would run; runs nothing")
    p.set_defaults(run=_plan)

    p = with_spec("apply", "run every stage that is not cached")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else embedded)")
    p.add_argument("--wait", action="store_true", help="wait if another run holds the workdir")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="stream every worker's output (vLLM, Ray, DeepSpeed, ...) instead of a live view; "
        "without it, that output goes to each stage's logs/ directory",
    )
    p.set_defaults(run=_apply)

    p = with_spec("sweep", "run Ray Tune over the spec's sweep.space (trials share the cache)")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else embedded)")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="stream every worker's output and show Tune's status tables; without it, the "
        "output goes to logs/ in the sweep's directory",
    )
    p.set_defaults(run=_sweep)

    p = sub.add_parser("models", help="list the model presets with their parameter counts")
    p.set_defaults(run=_models)

    data = sub.add_parser("data", help="data tools").add_subparsers(
        dest="data_command", required=True
    )
    p = data.add_parser("synth", help="write the built-in corpora (synth://NAME) as jsonl")
    p.add_argument("--out", required=True, help="directory for NAME.jsonl files")
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="corpus seed (default: the one synth:// uses, so the files hold the same records)",
    )
    p.set_defaults(run=_data_synth)

    p = sub.add_parser("report", help="plots and one HTML page over one or more runs")
    p.add_argument(
        "workdirs",
        nargs="+",
        type=Path,
        metavar="WORKDIR",
        help="run workdirs, or a directory of run workdirs",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="output directory (default: WORKDIR/report for one "
        "workdir, ./rsrl-report for several)",
    )
    p.set_defaults(run=_report)
    return parser


def _report(args: argparse.Namespace) -> int:
    from rsrl.report.command import report_command

    return report_command(args.workdirs, args.out)


def _validate(args: argparse.Namespace) -> int:
    from rsrl.pipeline.plan import compile_plan
    from rsrl.spec.load import load_spec, spec_to_yaml

    spec = load_spec(args.spec, args.overrides)
    if args.print:
        print(spec_to_yaml(spec), end="")
    stages = ", ".join(s.name for s in compile_plan(spec).stages)
    print(f"{args.spec}: valid spec '{spec.name}' ({stages})")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from rsrl.pipeline.lock import check_workdir
    from rsrl.pipeline.plan import compile_plan
    from rsrl.pipeline.show import format_plan
    from rsrl.spec.load import load_spec

    plan = compile_plan(load_spec(args.spec, args.overrides))
    check_workdir(plan.workdir, plan.spec.workdir)  # what `rsrl apply` would stop at
    print(format_plan(plan))
    return 0


def _apply(args: argparse.Namespace) -> int:
    from rsrl.layout import APPLY_LOG
    from rsrl.pipeline.apply import ClusterTooSmall, StageFailed, apply_plan
    from rsrl.pipeline.lock import WorkdirBusy, check_workdir
    from rsrl.pipeline.plan import compile_plan
    from rsrl.pipeline.progress import stage_view
    from rsrl.pipeline.session import connect
    from rsrl.pipeline.show import format_outcomes, format_plan
    from rsrl.pipeline.worker_logs import WorkerLogs, file_worker_lines
    from rsrl.spec.load import load_spec
    from rsrl.train.fit import uses_ray_train

    plan = compile_plan(load_spec(args.spec, args.overrides))
    check_workdir(plan.workdir, plan.spec.workdir)  # a spec mistake: before Ray starts
    print(format_plan(plan), flush=True)
    apply_log = plan.workdir / APPLY_LOG
    start = time.time()
    connect(
        args.address,
        ray_train=uses_ray_train(plan.spec.resources),
        notices_to=None if args.verbose else apply_log,
    )
    view = stage_view(plan.stage_dirs(), live=sys.stdout.isatty() and not args.verbose)
    file_worker_lines(WorkerLogs(apply_log, plan.stage_dirs(), view.running), args.verbose)
    try:
        outcomes = apply_plan(plan, wait_for_lock=args.wait, view=view)
    except WorkdirBusy as err:
        print(f"rsrl: {err}", file=sys.stderr)
        return EXIT_FAILED
    except ClusterTooSmall as err:
        print(f"rsrl: {err}", file=sys.stderr)
        return EXIT_USAGE
    except StageFailed as err:
        _print_failure(err)
        # Bad data (a DataError is a SpecError) is the user's mistake, like a bad spec.
        return EXIT_USAGE if isinstance(err.cause, SpecError) else EXIT_FAILED
    print(format_outcomes(outcomes, time.time() - start))
    _print_findings(outcomes)
    return 0


def _print_failure(err: StageFailed) -> None:
    """rsrl's one-line error; for a failure that is no mistake of the user's (those say all
    there is to say), the last FAILURE_TAIL lines of the log that holds it, and its path."""
    from rsrl.pipeline.registry import StageNotImplemented

    print(f"rsrl: {err}", file=sys.stderr)
    mistake = isinstance(err.cause, (SpecError, StageNotImplemented))
    if not mistake and err.log is not None and err.log.is_file():
        tail = err.log.read_text(errors="replace").splitlines()[-FAILURE_TAIL:]
        print(f"rsrl: the last {len(tail)} lines of {err.log}:", file=sys.stderr)
        print("\n".join(f"  | {line}" for line in tail), file=sys.stderr)
    if not isinstance(err.cause, StageNotImplemented):
        print(
            "rsrl: the stages finished before it are kept; fix the cause and run "
            "`rsrl apply` again to resume",
            file=sys.stderr,
        )


def _print_findings(outcomes: list[StageOutcome]) -> None:
    """What the run found (the eval stage's results), then the report's path."""
    from rsrl.eval.results import read_eval_metrics
    from rsrl.report.findings import findings

    by_stage = {o.stage: o for o in outcomes}
    if "eval" in by_stage:
        for line in findings(read_eval_metrics(by_stage["eval"].out_dir)):
            print(line)
    report = by_stage["report"].result.get("report") if "report" in by_stage else None
    if report:
        print(f"report: {report}")


def _sweep(args: argparse.Namespace) -> int:
    from rsrl.pipeline.session import connect
    from rsrl.pipeline.worker_logs import WorkerLogs, file_worker_lines
    from rsrl.spec.load import load_spec
    from rsrl.sweep.run import format_results, require_sweep, run_sweep, sweep_dir

    spec = load_spec(args.spec, args.overrides)
    sweep = require_sweep(spec)  # before Ray starts
    sweep_log = sweep_dir(spec) / SWEEP_LOG
    connect(args.address, notices_to=None if args.verbose else sweep_log)
    # Trials run in Tune's workers: every line of theirs goes to logs/ beside the sweep's log.
    file_worker_lines(WorkerLogs(sweep_log, stage_dirs={}, running=lambda: []), args.verbose)
    result = run_sweep(args.spec, args.overrides, verbose=args.verbose)
    print(format_results(result, sweep))
    return 0 if result.rows else EXIT_FAILED


def _models(args: argparse.Namespace) -> int:
    from rsrl.models.params import presets_table

    print(presets_table())
    return 0


def _data_synth(args: argparse.Namespace) -> int:
    from rsrl.data.synth import SYNTH_SEED, write_corpora

    seed = SYNTH_SEED if args.seed is None else args.seed
    for path in write_corpora(args.out, seed=seed):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
