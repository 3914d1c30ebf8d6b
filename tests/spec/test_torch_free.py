"""A spec is checked before any framework loads: validating one must not import torch."""

import subprocess
import sys


def test_validating_a_spec_imports_no_torch():
    code = (
        "import sys, rsrl.spec, rsrl.spec.validate; "
        "assert 'torch' not in sys.modules, 'the spec imported torch'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
