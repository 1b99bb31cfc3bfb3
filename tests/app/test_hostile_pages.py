"""Every page, and every download, on a snapshot whose every text column holds hostile values
(tests/hostile_data.py): nothing from data renders as Markdown, HTML, a link, an image, math, a
colour or an icon, in text or in a chart; no bidirectional control reaches the page; no table
download (the toolbar's CSV) and no report download holds a cell a spreadsheet would run.
tests/e2e/test_hostile_browser.py walks the same pages in Chromium."""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field

import pytest
import streamlit as st
from google.protobuf.json_format import MessageToDict
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from analysis.untrusted import visible
from tests.conftest import REPO
from tests.hostile_data import (
    BIDI,
    HOSTILE,
    build_hostile_data,
    formula_cells_in_csv,
    formula_cells_in_html,
    frontend_csv,
    markdown_findings,
    plotly_findings,
)

VIEWS = sorted((REPO / "app" / "views").glob("*.py"))
# Proto fields Streamlit renders as Markdown, and elements whose text it shows literally.
MARKDOWN_FIELDS = {"body", "label", "help", "delta", "placeholder", "caption"}
LITERAL_ELEMENTS = {"Code", "Text"}
# What the user typed into an input is theirs to edit, not text the page shows about data.
INPUT_FIELDS = {"default", "raw_value", "value", "id", "form_id", "spec", "columns"}


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    return build_hostile_data(tmp_path_factory.mktemp("hostile"))


@pytest.fixture
def with_hostile(hostile_dir, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(hostile_dir))
    st.cache_resource.clear()
    st.cache_data.clear()
    return hostile_dir


@pytest.fixture
def downloads(monkeypatch):
    """What every st.download_button of the run offers, by label."""
    offered: dict[str, str] = {}
    original = DeltaGenerator.download_button

    def recording(self, label, data, *args, **kwargs):
        offered[label] = data if isinstance(data, str) else data.decode()
        return original(self, label, data, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", recording)
    return offered


@dataclass
class Findings:
    live: list[str] = field(default_factory=list)  # markup, links, math, icons from data
    bidi: list[str] = field(default_factory=list)  # bidirectional controls on the page
    formulas: list[str] = field(default_factory=list)  # download cells a spreadsheet runs


def _nodes(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _nodes(child)


def _strings(node, key=""):
    if isinstance(node, str):
        yield key, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _strings(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v, key)


def inspect(at: AppTest, offered: dict[str, str]) -> Findings:
    found = Findings()
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        kind = type(node).__name__
        if type(proto).__name__ == "PlotlyChart":
            spec = json.loads(proto.spec)
            found.live += [f"chart {s}" for s in plotly_findings(spec)]
            found.bidi += [f"chart {k}" for k, s in _strings(spec) if BIDI.search(s)]
            continue
        if kind == "Dataframe":
            exported = frontend_csv(node.value)
            found.formulas += [f"table {c[:60]!r}" for c in formula_cells_in_csv(exported)]
            found.bidi += ["table cell"] if BIDI.search(exported) else []
            continue
        for key, text in _strings(MessageToDict(proto, preserving_proto_field_name=True)):
            if key in INPUT_FIELDS:
                continue
            if BIDI.search(text):
                found.bidi.append(f"{kind}.{key}: {text[:60]!r}")
            if key in MARKDOWN_FIELDS and kind not in LITERAL_ELEMENTS:
                found.live += [f"{kind}.{key}: {f}" for f in markdown_findings(text)]
    for label, data in offered.items():
        cells = formula_cells_in_html(data) if "<html" in data else formula_cells_in_csv(data)
        found.formulas += [f"{label}: {c[:60]!r}" for c in cells]
        found.bidi += [label] if BIDI.search(data) else []
    return found


@pytest.mark.parametrize("path", VIEWS, ids=[p.stem for p in VIEWS])
def test_hostile_data_shows_as_plain_text_and_downloads_hold_no_formula(
    with_hostile, downloads, path
):
    at = AppTest.from_file(str(path), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert not [e.value for e in at.error if "failed to load" in e.value]
    found = inspect(at, downloads)
    assert (found.live, found.bidi, found.formulas) == ([], [], [])


def _shown_text(at: AppTest, offered: dict[str, str]) -> str:
    """Everything the run shows or offers, with the escaping undone: what a reader reads."""
    parts = list(offered.values())
    for node in _nodes(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if type(proto).__name__ == "PlotlyChart":
            parts += [html.unescape(s) for _, s in _strings(json.loads(proto.spec))]
        elif type(node).__name__ == "Dataframe":
            parts.append(node.value.to_csv())
        else:
            parts += [s for _, s in _strings(MessageToDict(proto))]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts)).replace("\u2060", "").replace("'", "")


def test_the_walk_meets_every_hostile_value(with_hostile, downloads):
    """The checks above are not vacuous: every payload reaches labels, charts, tables, text or
    downloads of these pages, and is shown there as the characters it holds."""
    shown = ""
    for page in ("infrastructure", "errors", "feedback", "benchmarks", "conversations"):
        at = AppTest.from_file(str(REPO / "app" / "views" / f"{page}.py"), default_timeout=120)
        at.run()
        shown += _shown_text(at, downloads)
    heads = [visible(h).replace("\r", "\n")[:20].replace("'", "") for h in HOSTILE]
    assert [h for h in heads if h not in shown] == []
    assert {"Download report (HTML)", "Download table (CSV)"} <= set(downloads)
