"""Showing untrusted text (error messages, feedback comments, user agents) literally.

st.markdown and st.write parse Markdown, and Streamlit's Markdown adds its own syntax (colour
directives such as :red[...], $math$). Text a caller or an attacker controls must reach the
screen as the characters they typed, never as formatting, links, images or HTML.

CommonMark (spec 0.31, section 2.4 "Backslash escapes"): any ASCII punctuation character may be
backslash-escaped and is then a literal character. So every ASCII punctuation character is
escaped, which disarms emphasis, links, images, raw HTML, entities (&...;), headings, lists,
block quotes, tables, code spans, directives and math in one rule. Leading whitespace is dropped
per line so four spaces cannot open an indented code block (where escapes would show).

st.dataframe, st.code and st.text show text literally and need none of this; never pass
untrusted text to anything with unsafe_allow_html=True.
"""

from __future__ import annotations

import html
import string

import pandas as pd

_ESCAPES = str.maketrans({c: "\\" + c for c in string.punctuation})


def markdown_literal(text: object, max_length: int | None = 2000) -> str:
    """`text` as Markdown source that renders exactly as the characters of `text`.

    None becomes an empty string; longer text is cut at `max_length` characters with an
    ellipsis (cut before escaping, so an escape is never split).
    """
    if text is None:
        return ""
    s = str(text)
    if max_length is not None and len(s) > max_length:
        s = s[:max_length] + "…"
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.lstrip().translate(_ESCAPES) for line in s.split("\n")]
    # a hard line break (two trailing spaces are not used: they would be stripped by editors)
    return "  \n".join(lines)


def quote_block(text: object, max_length: int | None = 2000) -> str:
    """Untrusted text as a Markdown block quote (each line prefixed), escaped as above."""
    body = markdown_literal(text, max_length)
    return "\n".join("> " + line for line in body.split("\n"))


def plotly_literal(text: object, max_length: int = 200) -> str:
    """Text for Plotly labels and hovers, which render a subset of HTML (<b>, <a>, <br>)."""
    if text is None:
        return ""
    s = str(text)
    if len(s) > max_length:
        s = s[:max_length] + "…"
    return html.escape(s, quote=True)


def spreadsheet_safe(frame) -> pd.DataFrame:
    """A copy whose text cells cannot run as spreadsheet formulas (OWASP CSV injection):
    st.dataframe offers a CSV download of what it shows, so every table goes through this."""
    from analysis.report import neutralise_cell

    if isinstance(frame, list | dict):
        frame = pd.DataFrame(frame)
    if not isinstance(frame, pd.DataFrame):
        return frame
    text = [
        c
        for c in frame.columns
        if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])
    ]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].map(neutralise_cell) for c in text})
