"""The RL curve's bookkeeping: which steps it measures, and what a resume keeps."""

import json

from rsrl.files import read_jsonl
from rsrl.layout import RL_CURVE_ROWS
from rsrl.rl.curve import RLCurve


def test_due_at_the_start_every_n_steps_and_at_the_end(tmp_path):
    curve = RLCurve(
        stage_dir=tmp_path, suites=[], every=5, steps=12, plugins=[], seed=0, resume_step=0
    )
    assert [s for s in range(13) if curve.due(s)] == [0, 5, 10, 12]


def test_a_resume_keeps_the_rows_up_to_its_step_and_measures_on_from_there(tmp_path):
    path = tmp_path / RL_CURVE_ROWS
    rows = [{"suite": "count", "step": s, "avg@8": s / 10} for s in (0, 5, 10)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = RLCurve(tmp_path, suites=[], every=5, steps=12, plugins=[], seed=0, resume_step=7)
    assert [r["step"] for r in read_jsonl(path)] == [0, 5]  # 10 came after the checkpoint
    assert not curve.due(5) and curve.due(10) and curve.due(12)
