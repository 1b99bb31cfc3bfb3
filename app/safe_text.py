"""Showing untrusted text (error messages, feedback comments, probe targets, release names, user
agents) as the characters it holds: the one escaping rule for every place data meets the page.

1. Characters: analysis.untrusted.visible replaces bidirectional and other control characters
   with U+FFFD (a right-to-left override would reorder what a reader sees) and cuts long text.
2. Then the escaping of where it is shown:
   - Markdown (st.markdown, captions, alerts, and every label, value, delta and help of a metric
     or widget, which Streamlit renders as Markdown): `markdown_literal`. CommonMark (spec 0.31,
     section 2.4 "Backslash escapes") makes any backslash-escaped ASCII punctuation literal, so
     escaping all of it disarms emphasis, links, images, raw HTML, entities, headings, lists,
     tables, code spans and Streamlit's own syntax (:red[...] directives, :material/...: icons,
     $math$, which its renderer only finds unescaped). Leading whitespace is dropped per line so
     four spaces cannot open an indented code block (where escapes would show). One thing
     escapes cannot stop: remark-gfm turns bare URLs and e-mail addresses into links after
     escapes are resolved (www.x.y, http://..., a@b.c, when preceded by a space or punctuation).
     A WORD JOINER (U+2060, invisible, not whitespace or punctuation) before "http"/"www" and
     after "@" breaks those matches.
   - Plotly (titles, axis and tick labels, legends, hovers, annotations render a subset of HTML:
     <a href>, <b>, <br>, <span style>): `plotly_literal`, used on every string of a figure by
     app.charts.show.
   - Literal places (st.dataframe cells, st.code, st.text, select box options): `plain`.
   Tables also neutralise spreadsheet formulas, since their toolbar downloads them as CSV
   (analysis.untrusted.neutralise_cell, the one rule for every download).

Never pass untrusted text to anything with unsafe_allow_html=True.
"""

from __future__ import annotations

import re
import string

import pandas as pd

from analysis.untrusted import neutralise_cell, visible

_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})
_JOINER = "\u2060"  # WORD JOINER: invisible, and neither whitespace nor punctuation
_AUTOLINK_START = re.compile(r"(?=https?|www)", re.IGNORECASE)


def plain(text: object, max_length: int | None = 200) -> str:
    """Text for places that show it literally (select box options, st.text, st.code)."""
    return visible(text, max_length)


def markdown_literal(text: object, max_length: int | None = 2000) -> str:
    """`text` as Markdown source that renders exactly as the characters of `text`.

    None becomes an empty string; longer text is cut at `max_length` characters with an
    ellipsis (cut before escaping, so an escape is never split).
    """
    s = visible(text, max_length)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    lines = [
        _AUTOLINK_START.sub(_JOINER, line.lstrip().translate(_ESCAPES)).replace("@", "@" + _JOINER)
        for line in s.split("\n")
    ]
    # a hard line break (two trailing spaces are not used: they would be stripped by editors)
    return "  \n".join(lines)


def quote_block(text: object, max_length: int | None = 2000) -> str:
    """Untrusted text as a Markdown block quote (each line prefixed), escaped as above."""
    body = markdown_literal(text, max_length)
    return "\n".join("> " + line for line in body.split("\n"))


def plotly_literal(text: object, max_length: int | None = 200) -> str:
    """Text for Plotly, which renders a subset of HTML (<a href>, <b>, <br>, <span style>) and
    the entities &lt; &gt; &amp; and &#...; in every label, tick, legend, hover and annotation.
    Only &, < and > are escaped: outside a tag quotes are plain text, and Plotly shows &quot;
    literally."""
    s = visible(text, max_length)
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _text(values: pd.Series | pd.Index) -> bool:
    return values.dtype == object or pd.api.types.is_string_dtype(values)


def spreadsheet_safe(frame) -> pd.DataFrame:
    """A copy for st.dataframe whose text (cells, list cells, column names and the index) shows
    only visible characters and cannot run as a spreadsheet formula: st.dataframe's toolbar
    downloads what it shows as CSV, header and index included."""
    if isinstance(frame, list | dict):
        frame = pd.DataFrame(frame)
    if not isinstance(frame, pd.DataFrame):
        return frame
    frame = frame.rename(columns=lambda c: neutralise_cell(c) if isinstance(c, str) else c)
    if _text(frame.index):
        frame = frame.set_axis(frame.index.map(neutralise_cell), axis="index")
    for column in frame.columns:
        if _text(frame[column]):
            frame[column] = frame[column].map(neutralise_cell)
    return frame
