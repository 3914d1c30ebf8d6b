"""DeepSpeed is imported without the mlflow import its autotuner makes (1.7 s per training
process), and mlflow still imports after it: rsrl's tracker needs it."""

import subprocess
import sys

CHECK = """
import sys
from rsrl.runtime import import_deepspeed
deepspeed = import_deepspeed()
assert deepspeed.initialize
assert "mlflow" not in sys.modules, "DeepSpeed's import pulled in mlflow"
import mlflow
assert mlflow.start_run
"""


def test_deepspeed_imports_without_mlflow_which_still_imports_after():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
