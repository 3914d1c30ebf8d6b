"""A spec without `logging:` never imports wandb or mlflow (seconds each to import)."""

import subprocess
import sys


def test_untracked_runs_import_no_tracker_library():
    code = (
        "import sys\n"
        "from rsrl.pipeline.apply import apply_plan\n"
        "from rsrl.pipeline.plan import compile_plan\n"
        "from rsrl.spec import load_spec\n"
        "from rsrl.sweep.run import run_sweep\n"
        "from rsrl.tracking.session import configured_trackers\n"
        "from rsrl.train.metrics import MetricsWriter\n"
        "plan = compile_plan(load_spec('specs/quickstart.yaml'))\n"
        "assert configured_trackers(plan.spec, plan.workdir) == []\n"
        "loaded = [m for m in ('wandb', 'mlflow') if m in sys.modules]\n"
        "assert not loaded, f'imported {loaded}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
