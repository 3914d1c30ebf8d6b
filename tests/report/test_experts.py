"""The report's MoE section: expert load per layer, drawn and tabled for the runs that log
it (training and RL), and absent from a report of dense runs."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

from rsrl.layout import STEP_METRICS
from rsrl.report.plots import experts_figure
from rsrl.report.workdir import load_workdirs
from rsrl.report.write import write_report
from rsrl.train.metrics import read_metrics
from tests.report.run_dirs import make_run
from tests.report.test_report import assert_every_figure_and_table, assert_pngs, parse

LAYERS = 2
EXPERTS_PNGS = {"experts-pretrain.png", "experts-midtrain.png", "experts-rl.png"}


def moe_stats(step: int, stage: str, *, bias: bool) -> dict:
    """The keys `rsrl.models.moe` logs for a 2-layer MoE (plus, in rl, the routing
    agreement with the rollout engine); loads even out over the steps."""
    stats: dict[str, float] = {}
    for i in range(LAYERS):
        stats[f"moe/maxvio/l{i}"] = (1 + i) / (1 + step)
        stats[f"moe/dead/l{i}"] = float(i)
        stats[f"moe/load_entropy/l{i}"] = 1 - 0.1 * (1 + i) / (1 + step)
        if bias:
            stats[f"moe/bias_min/l{i}"] = -0.001 * step
            stats[f"moe/bias_max/l{i}"] = 0.002 * step
        if stage == "rl":
            stats[f"moe/routing_agreement/l{i}"] = 1.0
            stats[f"moe/own_routing_agreement/l{i}"] = 0.9 - 0.1 * i
    for stat, worst in (("maxvio", max), ("dead", max), ("load_entropy", min)):
        stats[f"moe/{stat}"] = worst(stats[f"moe/{stat}/l{i}"] for i in range(LAYERS))
    if stage == "rl":
        stats["moe/routing_agreement"] = 1.0
        stats["moe/own_routing_agreement"] = 0.8
    return stats


def make_moe_run(workdir: Path, beta: float, *, bias: bool) -> None:
    """A finished run whose every model stage logged its expert loads."""
    dirs = make_run(workdir, beta)
    for stage in ("pretrain", "midtrain", "rl"):
        records = read_metrics(dirs[stage])
        lines = [
            json.dumps({**r, **moe_stats(r["step"], stage, bias=bias)}) + "\n" for r in records
        ]
        (dirs[stage] / STEP_METRICS).write_text("".join(lines))


class TableParser(HTMLParser):
    """Each table's caption and rows of cell texts (the header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.caption = ""
        self.cell: str | None = None  # the text of the open caption or cell

    def handle_starttag(self, tag, attrs):
        if tag in ("caption", "th", "td"):
            self.cell = ""
        elif tag == "tr":
            self.tables[self.caption].append([])

    def handle_endtag(self, tag):
        if tag == "caption":
            self.caption = self.cell or ""
            self.tables[self.caption] = []
        elif tag in ("th", "td"):
            self.tables[self.caption][-1].append(self.cell or "")
        self.cell = None if tag in ("caption", "th", "td") else self.cell

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def experts_rows(report: Path) -> list[dict[str, str]]:
    parser = TableParser()
    parser.feed(report.read_text(encoding="utf-8"))
    (caption,) = [c for c in parser.tables if c.startswith("Experts")]
    header, *rows = parser.tables[caption]
    return [dict(zip(header, row)) for row in rows]


def test_a_moe_run_gets_an_experts_section_with_its_last_step_per_layer(tmp_path):
    make_moe_run(tmp_path / "moe", -0.25, bias=True)
    make_run(tmp_path / "dense", 0.5)
    out = tmp_path / "report"
    report = write_report(load_workdirs([tmp_path / "moe", tmp_path / "dense"]), out)
    page = parse(report)
    assert "Experts (MoE)" in page.by_tag["h2"]
    assert_pngs(out, EXPERTS_PNGS)
    assert_every_figure_and_table(page, out)

    rows = experts_rows(report)
    assert [(r["run"], r["stage"], r["layer"]) for r in rows] == [
        ("objective.beta=-0.25", stage, layer)
        for stage in ("pretrain", "midtrain", "rl")
        for layer in ("0", "1")
    ]  # the dense run has none
    pretrain_l1, rl_l0, rl_l1 = rows[1], rows[4], rows[5]
    assert pretrain_l1["step"] == "55" and pretrain_l1["MaxVio"] == f"{2 / 56:.4g}"
    assert pretrain_l1["dead experts"] == "1" and pretrain_l1["bias max"] == "0.11"
    assert pretrain_l1["load entropy"] == f"{1 - 0.2 / 56:.4g}"
    assert pretrain_l1["routing agreement"] == ""  # the engine routes in rl only
    assert rl_l0["step"] == "29" and rl_l0["bias min"] == "-0.029"
    assert rl_l0["routing agreement"] == "1" and rl_l0["own routing agreement"] == "0.9"
    assert rl_l1["own routing agreement"] == "0.8"


def test_experts_figure_has_a_row_of_panels_per_moe_run(tmp_path):
    make_moe_run(tmp_path / "bias", -0.25, bias=True)
    make_moe_run(tmp_path / "aux", 0.5, bias=False)
    make_run(tmp_path / "dense", 0.0)
    runs = load_workdirs([tmp_path / "bias", tmp_path / "aux", tmp_path / "dense"])
    rl = experts_figure(runs, "rl")
    pretrain = experts_figure(runs, "pretrain")
    assert rl is not None and pretrain is not None
    assert len(rl.axes) == 2 * 3  # MaxVio, load entropy, routing agreement
    assert len(pretrain.axes) == 2 * 2
    assert len(rl.axes[2].get_lines()) == 2 * LAYERS  # used and own, per layer
    assert experts_figure(runs[2:], "rl") is None


def test_a_dense_report_has_no_experts_section(tmp_path):
    make_run(tmp_path / "dense", 0.0)
    out = tmp_path / "report"
    page = parse(write_report(load_workdirs([tmp_path / "dense"]), out))
    assert "Experts (MoE)" not in page.by_tag["h2"]
    assert not any(c.startswith("Experts") for c in page.by_tag["caption"])
    assert not list(out.glob("experts-*.png"))
    assert page.tables == 5
