"""The `eval:` section: sampled suites, held-out text and lm-eval benchmarks (docs/eval.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rsrl.config import Problems, check_choices
from rsrl.data.config import HeldoutSpec, PromptSourceSpec
from rsrl.eval.results import RESERVED_NAMES
from rsrl.layout import ModelStage
from rsrl.rl.rollout.config import check_sampling
from rsrl.verifiers.config import VerifierSpec


@dataclass
class SuiteSpec:
    name: str = ""
    data: PromptSourceSpec = field(default_factory=PromptSourceSpec)
    verifier: VerifierSpec = field(default_factory=VerifierSpec)
    n_samples: int = 16
    k: list[int] = field(default_factory=lambda: [1])
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 64

    def check(self, path: str, plugins: list[str]) -> list[str]:
        p = Problems(path)
        p.lines += self.data.check(f"{path}.data")
        p.lines += self.verifier.check(f"{path}.verifier", plugins)
        p.need(self.n_samples >= 1, "n_samples", self.n_samples, "must be >= 1")
        for j, k in enumerate(self.k):
            p.need(
                1 <= k <= self.n_samples,
                f"k[{j}]",
                k,
                f"must be in [1, n_samples={self.n_samples}] (pass@k needs k samples)",
            )
        return p.lines + check_sampling(self, path)


@dataclass
class HarnessSpec:
    """Base-model benchmarks run by lm-evaluation-harness (its `hf` model, tasks and metrics)
    on the HF export of each named checkpoint."""

    tasks: list[str] = field(default_factory=list)  # lm-eval task, group or tag names
    num_fewshot: int = 0
    limit: int | None = None  # only the first `limit` documents of each task (quick looks)
    include_path: str | None = None  # a directory of your own task YAMLs (local data: offline)
    batch_size: int = 8
    # Those the run produces are scored; the rest are skipped.
    checkpoints: list[ModelStage] = field(default_factory=lambda: ["pretrain", "midtrain", "rl"])

    def check(self, produced: list[str], path: str = "eval.harness") -> list[str]:
        from rsrl.data.paths import check_data_path
        from rsrl.eval.harness import unknown_tasks  # imports lm_eval: only for eval.harness

        p = Problems(path)
        p.need(
            len(self.tasks) > 0 and len(set(self.tasks)) == len(self.tasks),
            "tasks",
            self.tasks,
            "must list lm-eval task names, each once (e.g. [arc_easy]; `lm-eval ls tasks`)",
        )
        p.at_least(self, ("num_fewshot",), 0, strict=False)
        p.need(
            self.limit is None or self.limit >= 1, "limit", self.limit, "must be >= 1 (or unset)"
        )
        p.at_least(self, ("batch_size",), 1, strict=False)
        check_choices(self, p)
        p.need(
            any(c in produced for c in self.checkpoints),
            "checkpoints",
            self.checkpoints,
            f"must name a checkpoint this spec produces ({', '.join(produced) or 'none'})",
        )
        if self.include_path is not None:
            if problem := check_data_path(self.include_path, want_dir=True):
                p.add("include_path", f"{problem} (a directory of lm-eval task YAMLs)")
                return p.lines
        if unknown := unknown_tasks(self.tasks, self.include_path):
            where = f"not in {self.include_path} and " if self.include_path else ""
            p.add(
                "tasks",
                f"lm-eval does not know {', '.join(map(repr, unknown))}: {where}not among its "
                "own tasks, groups and tags (see `lm-eval ls tasks`); put your own task YAMLs "
                "in a directory and name it in eval.harness.include_path",
            )
        return p.lines


@dataclass
class EvalSpec:
    suites: list[SuiteSpec] = field(default_factory=list)
    heldout_text: HeldoutSpec | None = None
    harness: HarnessSpec | None = None

    def check(self, plugins: list[str], produced: list[str], path: str = "eval") -> list[str]:
        p = Problems(path)
        seen: set[str] = set()
        for i, suite in enumerate(self.suites):
            p.need(
                bool(suite.name) and suite.name not in seen and suite.name not in RESERVED_NAMES,
                f"suites[{i}].name",
                suite.name,
                "must be a non-empty name, unique among the suites, "
                f"and none of {', '.join(RESERVED_NAMES)} (metrics use eval.<that>.* for "
                "held-out text and the RL comparison)",
            )
            seen.add(suite.name)
            p.lines += suite.check(f"{path}.suites[{i}]", plugins)
        if self.heldout_text is not None:
            p.lines += self.heldout_text.check(f"{path}.heldout_text")
        if self.harness is not None:
            p.lines += self.harness.check(produced, f"{path}.harness")
        return p.lines
