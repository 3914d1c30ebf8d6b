"""The RL curve: the eval suites scored on the policy as RL goes, as in the paper's RL figures.

Before the first step and every `rl.eval_every` steps (and after the last), rank 0 samples
the first `rl.eval_problems` problems of each eval suite through the rollout actors, which
already hold the current weights, with the suite's own sampling settings and seed: every
point of the curve sees the same problems and seeds, so points differ by the policy only.
Rows go to `eval_curve.jsonl` in the stage directory; the eval stage puts them in its
metrics.json. A resume drops the rows past its step and measures again from there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from rsrl.eval.config import SuiteSpec
from rsrl.files import read_jsonl
from rsrl.layout import RL_CURVE_ROWS


@dataclass(frozen=True)
class CurveSuite:
    suite: SuiteSpec
    prompts: list[dict]  # its first `rl.eval_problems` problems


class RLCurve:
    def __init__(
        self,
        stage_dir: Path,
        suites: list[CurveSuite],
        every: int,
        steps: int,
        plugins: list[str],
        seed: int,
        resume_step: int,
    ):
        from rsrl.verifiers import load_verifier

        self.path = Path(stage_dir) / RL_CURVE_ROWS
        self.suites, self.every, self.steps, self.seed = suites, every, steps, seed
        self.verifiers = {
            s.suite.name: load_verifier(s.suite.verifier.name, plugins) for s in suites
        }
        kept = [row for row in read_jsonl(self.path) if row["step"] <= resume_step]
        self.path.write_text("".join(json.dumps(row) + "\n" for row in kept))
        self.measured = {row["step"] for row in kept}

    def due(self, step: int) -> bool:
        return step not in self.measured and (step % self.every == 0 or step == self.steps)

    def measure(self, group, tokenizer, step: int) -> dict[str, float]:
        """Score every suite's subset on the group's current weights; a few numbers for the
        step's metrics line."""
        from rsrl.eval.suite import run_suite

        start = time.perf_counter()
        headline: dict[str, float] = {}
        with open(self.path, "a") as f:
            for s in self.suites:
                run = run_suite(
                    group, tokenizer, s.suite, s.prompts, self.verifiers[s.suite.name], self.seed
                )
                row = {
                    "suite": s.suite.name,
                    "step": step,
                    **{k: v for k, v in run.summary.items() if isinstance(v, (int, float))},
                }
                f.write(json.dumps(row) + "\n")
                avg = f"avg@{s.suite.n_samples}"
                headline[f"eval_{s.suite.name}_{avg}"] = run.summary[avg]
        self.measured.add(step)
        headline["eval_seconds"] = time.perf_counter() - start
        return headline
