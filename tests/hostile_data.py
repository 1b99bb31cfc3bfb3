"""A published snapshot whose every text column holds hostile values, for the tests that walk every
page and every download with it (tests/app/test_hostile_pages.py, tests/e2e/test_hostile_browser.py).

The demo is built through the real engine and publisher, then each Parquet file of the snapshot is
rewritten: every distinct text value becomes a hostile payload followed by the original value, the
same value the same way in every table (so joins on call ids, releases and variants still hold),
the payloads taking turns so that each column meets many of them. Left as they are: the closed
vocabularies the pages branch on (the schema's allowed sets, a deployment's status, an
exposure's unit type, a rollup's stage) and the service's own bookkeeping.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from markdown_it import MarkdownIt

from collectors.publish import read_manifest
from collectors.schema import TABLES
from tests.demo_data import build_demo_data

OUTSIDE = "evil.example"  # every URL in the payloads points here
PWNED = "__pwned"  # set on window by any script or handler from data that runs
HOSTILE = (
    f"![pixel](http://{OUTSIDE}/pixel.png)",
    f"[click me](http://{OUTSIDE}/click)",
    f"see http://{OUTSIDE}/bare or www.{OUTSIDE} or x@{OUTSIDE}",
    f'<a href="http://{OUTSIDE}/a">link</a>',
    f"<script>window.{PWNED} = 1</script>",
    f'<img src="http://{OUTSIDE}/img.png" onerror="window.{PWNED} = 1">',
    "$\\KaTeX$",
    ":red[x]",
    ":material/home:",
    "\u202eRTL",
    "=cmd|' /C calc'!A0",
    "+1",
    "-1",
    "@x",
    "\t=1",
    "\r=1+1",
    "A" * 10_000,
)
_LONG = HOSTILE[-1]
# Vocabularies the pages branch on, kept so that every page still has something to show.
_KEEP_COLUMNS = {(t.name, c.name) for t in TABLES.values() for c in t.columns if c.allowed} | {
    ("deployments", "status"),
    ("experiment_exposures", "unit_type"),
    ("rejects", "table_name"),
    ("collector_runs", "status"),
}
_KEEP_NAMES = {"outcome", "severity", "stage"}  # rollups carry these copies of kept columns
_KEEP_TABLES = {"watermarks", "schema_version", "dirty_partitions"}


def _files(serving: Path) -> list[tuple[str, Path]]:
    manifest = read_manifest(serving) or {}
    files = []
    for group in ("tables", "rollups"):
        for name, entry in manifest.get(group, {}).items():
            files += [(name, serving / d["file"]) for d in entry["days"].values()]
    for name, entry in manifest.get("bookkeeping", {}).items():
        files.append((name, serving / entry["file"]))
    return sorted(files)


def make_hostile(serving: Path) -> None:
    """Rewrite every text column of the published snapshot in `serving` (see the module doc)."""
    con = duckdb.connect()
    files = _files(serving)
    columns: dict[Path, list[str]] = {}
    for table, path in files:
        if table in _KEEP_TABLES:
            continue
        described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()
        columns[path] = [
            name
            for name, kind, *_ in described
            if kind == "VARCHAR" and (table, name) not in _KEEP_COLUMNS and name not in _KEEP_NAMES
        ]
    mapping: dict[str, str] = {}
    by_column: dict[str, set[str]] = {}
    for table, path in files:
        for name in columns.get(path, []):
            values = con.execute(
                f'SELECT DISTINCT "{name}" FROM read_parquet(\'{path}\') WHERE "{name}" IS NOT NULL'
            ).fetchall()
            by_column.setdefault(f"{table}.{name}", set()).update(v for (v,) in values)
    for number, (_, values) in enumerate(sorted(by_column.items())):
        rank = 0
        for value in sorted(values):
            if value in mapping:
                continue
            payload = HOSTILE[(number * 5 + rank) % len(HOSTILE)]
            if payload is _LONG and rank >= 3 * len(HOSTILE):  # a few long ones per column
                payload = HOSTILE[0]
            mapping[value] = f"{payload} {value}"
            rank += 1
    con.register("pairs", pa.table({"v": list(mapping), "h": list(mapping.values())}))
    con.execute("CREATE TABLE m AS SELECT * FROM pairs")
    for path, names in columns.items():
        if not names:
            continue
        replaced = ", ".join(f'coalesce(m{i}.h, t."{n}") AS "{n}"' for i, n in enumerate(names))
        joins = " ".join(f'LEFT JOIN m m{i} ON m{i}.v = t."{n}"' for i, n in enumerate(names))
        con.execute(
            f"COPY (SELECT t.* REPLACE ({replaced}) FROM read_parquet('{path}') t {joins}) "
            f"TO '{path}.new' (FORMAT parquet)"
        )
        Path(f"{path}.new").replace(path)
    con.close()


def build_hostile_data(root: Path, history_days: int = 4) -> Path:
    """The demo published into `root`, then made hostile."""
    build_demo_data(root, history_days=history_days)
    make_hostile(root / "serving")
    return root


# ------------------------------------------------------------------ what counts as a finding

BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _runs_as_formula(cell: str) -> bool:
    """A spreadsheet runs a cell, or a line of one, that starts with a formula character,
    unless it is a plain number."""
    for line in re.split(r"\r\n|\r|\n", cell):
        if line.startswith(_FORMULA):
            try:
                float(line)
            except ValueError:
                return True
    return False


def formula_cells_in_csv(text: str) -> list[str]:
    """Cells of a CSV download a spreadsheet would run, as a CSV reader splits them (a bare
    carriage return ends a row there, as it does in spreadsheets)."""
    text = text.removeprefix("\ufeff")
    return [
        c for row in csv.reader(io.StringIO(text, newline="")) for c in row if _runs_as_formula(c)
    ]


class _Blocks(HTMLParser):
    """The text of each cell and block of an HTML page: what a spreadsheet opening it reads."""

    BLOCKS = {"title", "h1", "h2", "h3", "p", "li", "th", "td", "caption"}

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[str] = []
        self._open = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.BLOCKS:
            self._open += 1
            self.blocks.append("")

    def handle_endtag(self, tag):
        if tag in self.BLOCKS:
            self._open -= 1

    def handle_data(self, data):
        if self._open and self.blocks:
            self.blocks[-1] += data


def formula_cells_in_html(page: str) -> list[str]:
    parser = _Blocks()
    parser.feed(page)
    return [b for b in parser.blocks if _runs_as_formula(b)]


def frontend_csv(frame: pd.DataFrame) -> str:
    """The CSV Streamlit's table toolbar writes for `frame` (its useDataExporter): the index and
    columns, a cell quoted only when it holds a comma, a double quote or a line feed, a list
    written joined by commas."""

    def cell(value) -> str:
        if isinstance(value, list | tuple | np.ndarray):
            value = ",".join(str(v) for v in value)
        elif value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        text = str(value)
        return f'"{text.replace(chr(34), chr(34) * 2)}"' if re.search('[,"\n]', text) else text

    shown = frame.reset_index() if not isinstance(frame.index, pd.RangeIndex) else frame
    lines = [",".join(cell(c) for c in shown.columns)]
    lines += [",".join(cell(v) for v in row) for row in shown.itertuples(index=False)]
    return "\n".join(lines) + "\n"


_md = MarkdownIt("commonmark")
# remark-gfm's autolink literals (mdast-util-gfm-autolink-literal), found in text after Markdown
# escapes are resolved, when the character before is the start, whitespace or punctuation.
_URL = re.compile(r"(https?://|www(?=\.))[-.\w]+[^ \t\r\n]*", re.IGNORECASE | re.ASCII)
_EMAIL = re.compile(r"[-.\w+]+@[-\w]+(?:\.[-\w]+)+", re.ASCII)
# Streamlit's own Markdown: directives (:red[x], :blue-badge[x]), icons, and its test for math
# (StreamlitMarkdown: code spans and escaped $ and \\ removed, then $...$ or $$...$$).
_DIRECTIVE = re.compile(r"(?<!\\):[A-Za-z][\w-]*\[|:material/")
_CODE_OR_ESCAPE = re.compile(
    r"(?:(?<=^)|(?<=\n)) {0,3}(`{3,}|~{3,})[\s\S]*?(?:\n[ \t]*\1|\Z)|(?<!`)(`+)[^`\n]+\2(?!`)|\\[\\$`]"
)
_MATH = re.compile(r"(?<!\$)\$\$+(?!\$)[\s\S]*?\$\$|(?<!\$)\$(?![\s$])[^$\n]*?[^\s$]\$(?!\d)")


# A link the workbench writes itself: a page's path, then URL-encoded query parameters only.
_OWN_PAGE = re.compile(r"[a-z_]+(\?[A-Za-z0-9_.~+%=&-]*)?")


def _after_boundary(text: str, start: int, email: bool = False) -> bool:
    if start == 0:
        return True
    before = text[start - 1]
    boundary = before.isspace() or unicodedata.category(before)[0] in "PS"
    return boundary and not (email and before == "/")


def markdown_findings(source: str) -> list[str]:
    """What Streamlit's Markdown would render from `source` beyond plain text."""
    found = []
    tokens = _md.parse(source)
    for token in tokens:
        for child in [token, *(token.children or [])]:
            if child.type == "link_open" and _OWN_PAGE.fullmatch(str(child.attrs.get("href"))):
                continue  # the page's own link to another page, its filters URL-encoded
            if child.type in ("link_open", "image", "html_inline", "html_block", "autolink"):
                found.append(f"{child.type}: {child.content or child.attrs}")
        text = "".join(c.content for c in token.children or [] if c.type == "text")
        for m in _URL.finditer(text):
            if _after_boundary(text, m.start()):
                found.append(f"autolink: {m.group(0)}")
        for m in _EMAIL.finditer(text):
            if _after_boundary(text, m.start(), email=True):
                found.append(f"autolink: {m.group(0)}")
    if _DIRECTIVE.search(source):
        found.append(f"directive or icon: {_DIRECTIVE.search(source).group(0)}")
    if "$" in source and _MATH.search(_CODE_OR_ESCAPE.sub("_", source)):
        found.append("math")
    return found


def plotly_findings(spec: dict) -> list[str]:
    """Strings of a Plotly figure that Plotly would render as markup (its HTML subset: <a href>,
    <b>, <br>, <span style>...). Hover and text templates are the page's own format strings."""
    found = []

    def visit(node, key: str) -> None:
        if key.endswith("template"):
            return
        if isinstance(node, str):
            if re.search(r"<\s*[A-Za-z/!]", node):
                found.append(f"{key}: {node[:80]}")
        elif isinstance(node, dict):
            for k, v in node.items():
                visit(v, k)
        elif isinstance(node, list):
            for v in node:
                visit(v, key)

    visit(spec, "")
    return found
