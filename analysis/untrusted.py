"""Text that came from data (callers, the agent, an attacker) on its way to a person: the rule
every page shares for which characters are shown, and the rule every download shares for cells.

`visible`: bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, U+200F, U+061C) reorder
the text around them, so "invoice\u202efdp.exe" reads "invoiceexe.pdf" (Trojan Source,
CVE-2021-42574), and other control characters are invisible. Each becomes U+FFFD, so a reader
sees that something was there. Long text is cut. The page-specific escaping (Markdown, Plotly's
HTML subset, HTML) is applied on top of this in app/safe_text.py and analysis/report.py.

`neutralise_cell`: a download cell (CSV, the table toolbar's CSV, the HTML report) that shows the
visible characters above and that a spreadsheet will not run as a formula (OWASP "CSV
Injection"): a text cell, or any line of one, that starts with =, +, -, @ or a tab gets a leading
single quote.
Carriage returns become line feeds first: Streamlit's table download quotes a cell only for a
comma, a double quote or a line feed, so a bare carriage return ends the row there and the
spreadsheet starts a new row with the rest ("\r=1+1" -> a row starting "=1+1").
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_INVISIBLE = re.compile(
    "[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional controls
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # control characters but tab, line feed, return
)
FORMULA_START = ("=", "+", "-", "@", "\t")


def visible(text: object, max_length: int | None = None) -> str:
    """`text` as the characters a reader should see: None is empty, controls become U+FFFD,
    text longer than `max_length` is cut with an ellipsis."""
    if text is None:
        return ""
    s = str(text)
    if max_length is not None and len(s) > max_length:
        s = s[:max_length] + "…"
    return _INVISIBLE.sub("\ufffd", s)


def neutralise_cell(value: Any) -> Any:
    """A download cell a spreadsheet will not run as a formula (text only; numbers pass)."""
    if isinstance(value, list | tuple | np.ndarray):  # a list cell is written joined by commas
        return [neutralise_cell(v) for v in value]
    if not isinstance(value, str):
        return value
    lines = visible(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join("'" + line if line.startswith(FORMULA_START) else line for line in lines)
