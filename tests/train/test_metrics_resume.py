"""A resumed stage's metrics file: lines past the resume step go, and so does a line that
a kill cut off mid-write (it would otherwise end the resume in a JSON error)."""

import json

from rsrl.layout import STEP_METRICS
from rsrl.train.metrics import MetricsWriter


def test_resume_drops_later_steps_and_a_cut_off_line(tmp_path):
    lines = [json.dumps({"step": s, "nll": 1.0 / s}) for s in (1, 2, 3)]
    (tmp_path / STEP_METRICS).write_text("\n".join(lines) + '\n{"step": 4, "nl')
    writer = MetricsWriter(tmp_path, 2, "pretrain", 10, ("nll",))
    writer.write({"step": 3, "nll": 0.2})
    writer.close()
    rows = [json.loads(line) for line in (tmp_path / STEP_METRICS).read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[-1]["nll"] == 0.2
