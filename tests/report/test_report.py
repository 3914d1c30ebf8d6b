"""The report from run directories in the real layout: the HTML parses, every PNG exists
and is non-empty, several runs share the axes, and missing pieces are named, not fatal."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

from rsrl.cli import main
from rsrl.eval.compare import decide_all, paired_comparison
from rsrl.pipeline.plan import compile_plan
from rsrl.pipeline.registry import StageContext, resolve_stage_fn
from rsrl.report.workdir import load_workdirs
from rsrl.report.write import write_report
from rsrl.spec import load_spec
from tests.report.run_dirs import QUICKSTART, make_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


class PageParser(HTMLParser):
    """Collects embedded images, table captions and text; checks tags are balanced."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.images: list[bytes] = []
        self.text: list[str] = []
        self.tables = 0
        self.classes: list[str] = []  # the class of each open tag
        self.by_tag: dict[str, list[str]] = {"h2": [], "caption": [], "summary": []}

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            src = dict(attrs)["src"]
            assert src.startswith("data:image/png;base64,")
            self.images.append(base64.b64decode(src.split(",", 1)[1]))
        self.tables += tag == "table"
        if tag not in VOID_TAGS:
            self.open.append(tag)
            self.classes.append(dict(attrs).get("class") or "")

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()
        self.classes.pop()

    def handle_data(self, data):
        self.text.append(data)
        if self.open and self.open[-1] in ("h2", "caption"):
            self.by_tag[self.open[-1]].append(data)
        if self.open[-2:] == ["ul", "li"] and self.classes[-2] == "summary":
            self.by_tag["summary"].append(data)


def parse(report: Path) -> PageParser:
    parser = PageParser()
    parser.feed(report.read_text(encoding="utf-8"))
    parser.close()
    assert parser.open == [], f"unclosed tags: {parser.open}"
    return parser


def assert_pngs(out_dir: Path, names: set[str]) -> None:
    pngs = {p.name: p for p in out_dir.glob("*.png")}
    assert names <= set(pngs), f"missing {names - set(pngs)}"
    for png in pngs.values():
        data = png.read_bytes()
        assert len(data) > 1000 and data.startswith(PNG_MAGIC), png


def test_two_finished_runs_on_the_same_axes(tmp_path):
    make_run(tmp_path / "beta-neg", -0.25)
    make_run(tmp_path / "beta-pos", 0.5)
    runs = load_workdirs([tmp_path / "beta-neg", tmp_path / "beta-pos"])
    assert [r.label for r in runs] == ["objective.beta=-0.25", "objective.beta=0.5"]
    assert all(not r.notes for r in runs)
    report = write_report(runs, tmp_path / "report")
    page = parse(report)
    expected = {
        "train-pretrain.png",
        "train-midtrain.png",
        "rl.png",
        "heldout.png",
        "passk-count.png",
        "rl-curve-count.png",
    }
    assert_pngs(tmp_path / "report", expected)
    assert len(page.images) == len(expected)
    assert all(img.startswith(PNG_MAGIC) for img in page.images)
    text = " ".join(page.text)
    assert page.tables == 5  # suites, RL gain, held-out, training, RL
    assert "RL gain: after - before RL, paired by problem" in text and "±" in text
    assert "objective.beta=-0.25" in text and "objective.beta=0.5" in text
    assert "pass@4" in text and "avg@16" in text and "perplexity" in text


def test_partial_and_missing_runs_are_reported_not_fatal(tmp_path):
    make_run(tmp_path / "partial", 0.0, finished=("pretrain",), started=("midtrain",))
    (tmp_path / "empty").mkdir()
    runs = load_workdirs([tmp_path / "partial", tmp_path / "gone", tmp_path / "empty"])
    notes = {r.where.name: " ".join(r.notes) for r in runs}
    assert "midtrain: unfinished" in notes["partial"]
    assert "showing the 4 steps logged so far" in notes["partial"]
    assert "rl: not run yet" in notes["partial"] and "eval: not run yet" in notes["partial"]
    assert "no such directory" in notes["gone"]
    assert "not an rsrl run directory" in notes["empty"]
    report = write_report(runs, tmp_path / "report")
    text = " ".join(parse(report).text)
    assert "midtrain: unfinished" in text and "no such directory" in text
    assert "no run has RL metrics" in text and "no eval suite results yet" in text
    assert_pngs(tmp_path / "report", {"train-pretrain.png", "train-midtrain.png"})
    assert not (tmp_path / "report" / "rl.png").exists()


def test_cli_report_expands_a_sweep_directory(tmp_path, capsys):
    make_run(tmp_path / "sweep" / "trial-0", -0.25)
    make_run(tmp_path / "sweep" / "trial-1", 0.0, finished=("pretrain", "midtrain"))
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "sweep"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert str(out / "report.html") in printed.out
    assert "trial-1" in printed.err and "rl: not run yet" in printed.err
    text = " ".join(parse(out / "report.html").text)
    assert "objective.beta=-0.25" in text and "objective.beta=0.0" in text
    assert_pngs(out, {"train-pretrain.png", "rl.png", "passk-count.png", "rl-curve-count.png"})


def test_cli_report_fails_when_nothing_exists(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 1
    assert "no such directory" in capsys.readouterr().err


def test_report_stage_writes_into_its_directory(tmp_path):
    dirs = make_run(tmp_path / "run", -0.25)
    spec = load_spec(QUICKSTART, [f"workdir={tmp_path / 'run'}", "objective.beta=-0.25"])
    stage = compile_plan(spec).stage("report")
    ctx = StageContext(
        spec=spec,
        stage=stage,
        out_dir=dirs["report"],
        inputs={name: dirs[name] for name in stage.inputs},
    )
    result = resolve_stage_fn("report")(ctx)
    assert result == {"report": str(dirs["report"] / "report.html")}
    page = parse(Path(result["report"]))
    assert len(page.images) == 6  # training x2, RL, RL curve, held-out, Pass@k
    assert "Notes" not in page.text


def test_a_sweep_report_opens_with_its_comparisons_and_draws_a_forest_plot_per_metric(tmp_path):
    make_run(tmp_path / "base", 0.0)
    make_run(tmp_path / "arm", -0.25)
    runs = load_workdirs([tmp_path / "base", tmp_path / "arm"])
    comparisons = decide_all(
        [
            {"arm": {"objective.beta": -0.25}, "metric": metric, **paired_comparison(arm, base)}
            for metric, arm, base in (
                ("eval.count.pass@4", [0.42, 0.47, 0.45], [0.40, 0.41, 0.38]),
                ("eval.count.avg@16", [0.20, 0.21, 0.19], [0.20, 0.22, 0.19]),
            )
        ]
    )
    out = tmp_path / "report"
    page = parse(write_report(runs, out, "rsrl sweep: beta", comparisons))
    # The page opens with what the sweep shows: each arm against the baseline.
    headings = page.by_tag["h2"]
    assert headings[0] == "Summary"
    assert headings.index("Arms against the baseline") < headings.index("Results")
    summary = page.by_tag["summary"]
    assert len(summary) == 2 and summary[0].startswith(
        "objective.beta=-0.25 - baseline, eval.count.pass@4: +0.05"
    )
    assert summary[1].endswith("over 3 seed(s): no detectable difference")
    assert_pngs(out, {"forest-eval.count.pass_4.png", "forest-eval.count.avg_16.png"})
    assert_every_figure_and_table(page, out)


def test_a_run_report_opens_with_its_rl_gain_and_held_out_text(tmp_path):
    make_run(tmp_path / "run", -0.25)
    out = tmp_path / "report"
    page = parse(write_report(load_workdirs([tmp_path / "run"]), out))
    assert page.by_tag["h2"][0] == "Summary"
    summary = page.by_tag["summary"]
    assert summary[0].startswith("RL gain, count avg@16") and summary[0].endswith("(gain)")
    gains = [line.split(": ", 1)[1] for line in summary[:-1]]
    assert len(set(gains)) == len(gains)  # metrics whose gain reads the same: said once
    assert summary[-1].startswith("held-out entropy / perplexity: pretrain ")
    assert_every_figure_and_table(page, out)


def assert_every_figure_and_table(page: PageParser, out: Path) -> None:
    """Every PNG the report wrote is on the page, and every table there has its caption."""
    written = sorted(png.read_bytes() for png in out.glob("*.png"))
    assert written and sorted(page.images) == written
    assert page.tables == len(page.by_tag["caption"]) and all(page.by_tag["caption"])
