"""Markdown rendering shared by every paper section: tables with footnotes, cells, the document.

A `Table` is a caption, a pipe table and its footnotes; a missing cell is always "—" with a
footnote marker ("— (a)") saying why, never NaN. `Doc` collects the lines of report.md and
the images it links. `check_markdown` enforces the report's guarantees before it is written.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sae.base import catalog as C

DASH = "—"
PLUS_MINUS = "±"


# ---------------------------------------------------------------- numbers


def fmt_number(v: float, digits: int = 3, percent: bool = False) -> str:
    """Percents with `digits` decimals, other numbers with `digits` significant digits."""
    if v is None or not math.isfinite(v):
        raise ValueError("fmt_number needs a finite number")
    return f"{v:.{digits}f}" if percent else f"{v:.{digits}g}"


def fmt_metric(v: float, metric: str) -> str:
    """A value of catalog metric `metric` (percent metrics already in %)."""
    m = C.METRICS[metric]
    return fmt_number(v, m.digits, m.unit == "%") + ("%" if m.unit == "%" else "")


def fmt_value(v) -> str:
    """A setting as params.yaml writes it (0.0001, [1.0, 0.5], true, sigmoid)."""
    if v is None:
        return "unset"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return np.format_float_positional(v, trim="-") if v != 0 else "0"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return ", ".join(f"{k} {fmt_value(x)}" for k, x in v.items() if x is not None) or "{}"
    return str(v)


def spread(mean: float, std: float | None, n: int, digits: int = 3, percent: bool = False) -> str:
    """'1.52 ± 0.08 (n=3)': a mean and its sample std over n seeds (no std for one seed)."""
    s = fmt_number(mean, digits, percent) + ("%" if percent else "")
    if std is not None and math.isfinite(std) and n > 1:
        s += f" {PLUS_MINUS} " + fmt_number(std, digits, percent)
    return f"{s} (n={n})"


def seed_spread(mean: float, std: float | None, n: int, metric: str) -> str:
    """spread() in the format of catalog metric `metric`."""
    m = C.METRICS[metric]
    return spread(mean, std, n, m.digits, m.unit == "%")


# ---------------------------------------------------------------- tables


def _marker(i: int, n: int) -> str:
    return f"({chr(ord('a') + i)})" if n <= 26 else f"({i + 1})"


@dataclass
class Table:
    """A markdown table with a caption and footnotes; cells are strings. `note(text)` returns
    the marker of a footnote (one marker per distinct text), `missing(why)` a "—" cell."""
    caption: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)   # lines printed under the footnotes

    def note(self, text: str) -> str:
        if text not in self.notes:
            self.notes.append(text)
        return _marker(self.notes.index(text), len(self.notes))

    def missing(self, why: str) -> str:
        return f"{DASH} {self.note(why)}"

    def add(self, *cells) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        notes = [f"{_marker(i, len(self.notes))} {t}" for i, t in enumerate(self.notes)]
        return "\n".join([self.caption, "", pipe_table(self.columns, self.rows), ""]
                         + (notes + [""] if notes else []) + ([*self.after, ""] if self.after else []))


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def pipe_table(columns, rows) -> str:
    """A GitHub-flavoured pipe table with padded columns (aligned in a terminal too)."""
    cells = [[_cell(c) for c in columns]] + [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


# ---------------------------------------------------------------- the document


@dataclass
class Doc:
    """The lines of report.md (written to `out_md`) and every image it links."""
    out_md: Path
    lines: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def table(self, t: Table) -> None:
        self.add(t.markdown())

    def image(self, path: Path, alt: str) -> None:
        """A paragraph with the image, linked relative to report.md."""
        self.images.append(Path(path))
        rel = os.path.relpath(path, Path(self.out_md).parent).replace(os.sep, "/")
        self.add(f"![{alt}]({rel})", "")

    def markdown(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"


# ---------------------------------------------------------------- guarantees

UNWANTED = re.compile(r"\b(nan|inf)\b", re.IGNORECASE)


def image_links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def table_headers(md: str) -> list[list[str]]:
    """The header cells of every pipe table in md."""
    lines = md.splitlines()
    out = []
    for i in range(len(lines) - 1):
        if lines[i].startswith("|") and re.fullmatch(r"\|(-+\|)+", lines[i + 1].replace(" ", "")) \
                and (i == 0 or not lines[i - 1].startswith("|")):
            out.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
    return out


def has_both_columns(header: list[str]) -> bool:
    """A `paper` column (or one named 'paper ...') and a `this run` column (or 'this run ...')."""
    return any(c == "paper" or c.startswith("paper ") for c in header) and \
        any(c == "this run" or c.startswith("this run ") for c in header)


def check_markdown(md: str, root: Path) -> None:
    """The report's guarantees: no NaN or inf, every linked image exists under root, every table
    has a paper and a this-run column (ValueError naming the first violation)."""
    for line in md.splitlines():
        if UNWANTED.search(line):
            raise ValueError(f"report would contain NaN or inf: {line[:200]}")
    for link in image_links(md):
        if not (Path(root) / link).is_file():
            raise ValueError(f"report links a missing image: {link}")
    for header in table_headers(md):
        if not has_both_columns(header):
            raise ValueError(f"report table without paper / this run columns: {header}")
