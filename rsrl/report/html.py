"""One self-contained HTML page: the figures embedded as base64 PNGs, tables, notes.

Every piece of text from a run (labels, paths, notes, values) is escaped.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from rsrl.report.runs import Run
from rsrl.report.tables import Row, columns

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text { text-align: left; }
.notes li { color: #8a4b00; } .missing { color: #777; font-style: italic; }
.summary { font-size: 1.05em; } .summary li { margin: 0.2em 0; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { color: #555; }
"""


@dataclass(frozen=True)
class Section:
    title: str
    tables: tuple[tuple[str, list[Row]], ...] = ()  # (caption, rows)
    figures: tuple[Path, ...] = ()  # PNG files, embedded in the page
    missing: str = ""  # said when the section has nothing to show


def render_page(
    title: str, runs: Sequence[Run], sections: Sequence[Section], summary: Sequence[str] = ()
) -> str:
    """The page: the title, `summary` (what the runs show, a line each), the runs, their
    notes, then `sections`."""
    body = [f"<h1>{escape(title)}</h1>", _summary(summary), _runs_list(runs), _notes(runs)]
    body += [_section(s) for s in sections]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(part for part in body if part)
        + "\n</body>\n</html>\n"
    )


def _summary(lines: Sequence[str]) -> str:
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<h2>Summary</h2>\n<ul class="summary">{items}</ul>' if items else ""


def _runs_list(runs: Sequence[Run]) -> str:
    items = "".join(
        f"<li><b>{escape(r.label)}</b>: <code>{escape(str(r.where))}</code></li>" for r in runs
    )
    return f"<h2>Runs</h2>\n<ul>{items}</ul>"


def _notes(runs: Sequence[Run]) -> str:
    items = "".join(
        f"<li><b>{escape(r.label)}</b>: {escape(note)}</li>" for r in runs for note in r.notes
    )
    return f'<h2>Notes</h2>\n<ul class="notes">{items}</ul>' if items else ""


def _section(section: Section) -> str:
    parts = [f"<h2>{escape(section.title)}</h2>"]
    parts += [_table(caption, rows) for caption, rows in section.tables if rows]
    parts += [_figure(png) for png in section.figures]
    if len(parts) == 1:
        parts.append(f'<p class="missing">{escape(section.missing)}</p>')
    return "\n".join(parts)


def _table(caption: str, rows: list[Row]) -> str:
    names = columns(rows)
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = "".join("<tr>" + "".join(_cell(row.get(n)) for n in names) + "</tr>" for row in rows)
    return f"<table>\n<caption>{escape(caption)}</caption>\n<tr>{head}</tr>\n{body}\n</table>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>" if math.isfinite(value) else f"<td>{value}</td>"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"<td>{value}</td>"
    return f'<td class="text">{escape("" if value is None else str(value))}</td>'


def _figure(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(png.stem)}">'
        f"<figcaption>{escape(png.name)}</figcaption></figure>"
    )
