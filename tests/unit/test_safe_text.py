"""Untrusted text reaches the screen as typed: never as Markdown, HTML, links or math."""

from __future__ import annotations

import pandas as pd
import pytest
from markdown_it import MarkdownIt

from app.safe_text import markdown_literal, plotly_literal, quote_block

# An independent CommonMark implementation checks what the escaped text renders to.
md = MarkdownIt("commonmark")

NASTY = [
    "<script>alert(1)</script> **bold**",
    "[click](javascript:alert(1)) ![x](http://tracker.example/p.png)",
    "# heading\n- item\n1. one\n> quote\n    code block",
    "`code` _em_ ~~strike~~ | a | b |\n|---|---|",
    "&lt;b&gt; &amp; &#60;img src=x onerror=alert(1)&#62;",
    ":red[coloured] $x^2$ \\*already escaped\\*",
    "<img src=x onerror=alert(1)>",
]


def rendered_text(markdown: str) -> str:
    """The HTML CommonMark produces, with the paragraph wrapper and line breaks removed."""
    html = md.render(markdown).strip()
    assert html.startswith("<p>") and html.endswith("</p>"), html
    return html[3:-4].replace("<br />\n", "\n")


@pytest.mark.parametrize("text", NASTY)
def test_markdown_literal_renders_exactly_the_characters_typed(text):
    import html

    expected = "\n".join(line.lstrip() for line in text.split("\n"))
    # the only markup allowed in the output is the HTML escaping of the characters themselves,
    # and the invisible word joiners that keep URLs from being linked (see below)
    shown = html.unescape(rendered_text(markdown_literal(text))).replace("\u2060", "")
    assert shown == expected
    assert "<script" not in rendered_text(markdown_literal(text))
    assert "<a " not in rendered_text(markdown_literal(text))
    assert "<img" not in rendered_text(markdown_literal(text))


def test_markdown_literal_escapes_streamlit_directives_and_math():
    out = markdown_literal(":red[x] $y$")
    assert out == "\\:red\\[x\\] \\$y\\$"


def test_none_and_long_text():
    assert markdown_literal(None) == ""
    out = markdown_literal("a" * 50, max_length=10)
    assert out == "a" * 10 + "…"


def test_quote_block_keeps_every_line_inside_the_quote():
    html = md.render(quote_block("line one\n# not a heading\n<b>x</b>"))
    assert html.startswith("<blockquote>") and html.count("<blockquote>") == 1
    assert "<h1>" not in html and "<b>" not in html


def test_plotly_literal_escapes_html_tags_plotly_would_render():
    assert (
        plotly_literal('<a href="javascript:x">y</a>') == '&lt;a href="javascript:x"&gt;y&lt;/a&gt;'
    )
    assert plotly_literal("&lt;b&gt;") == "&amp;lt;b&amp;gt;"  # entities show as typed
    assert plotly_literal(None) == ""


def test_tables_neutralise_spreadsheet_formulas_in_text_cells_only():
    from app.safe_text import spreadsheet_safe

    frame = pd.DataFrame(
        {
            "comment": ['=HYPERLINK("http://x","y")', "+1 great", "fine", None, "@SUM(A1)"],
            "rating": [1, 5, 4, 3, -2],
        }
    )
    safe = spreadsheet_safe(frame)
    comments = list(safe["comment"])
    assert comments[:3] + comments[4:] == [
        '\'=HYPERLINK("http://x","y")',
        "'+1 great",
        "fine",
        "'@SUM(A1)",
    ]
    assert pd.isna(comments[3])  # missing stays missing
    assert list(safe["rating"]) == [1, 5, 4, 3, -2]  # numbers stay numbers
    assert frame["comment"][0].startswith("=")  # the caller's frame is untouched


def test_bare_urls_and_addresses_are_not_linked_after_escaping():
    """remark-gfm (Streamlit's Markdown) links www.x.y, http(s)://... and a@b.c found in text
    after escapes are resolved, when the character before is the start, a space or punctuation."""
    from tests.hostile_data import markdown_findings

    for text in (
        "see http://evil.example/x and www.evil.example",
        "[x](https://evil.example) (www.evil.example)",
        "mail x@evil.example or mailto:y@evil.example",
        "HTTPS://EVIL.EXAMPLE",
    ):
        assert markdown_findings(markdown_literal(text)) == [], text
        assert markdown_findings(quote_block(text)) == [], text


def test_bidirectional_controls_never_reach_the_page():
    from app.safe_text import plain, spreadsheet_safe

    text = "invoice\u202efdp.exe \u2066x\u2069 \u200fy"
    shown = [markdown_literal(text), quote_block(text), plotly_literal(text), plain(text)]
    shown.append(spreadsheet_safe(pd.DataFrame({"c": [text]}))["c"][0])
    for s in shown:
        assert not any(c in s for c in "\u202e\u2066\u2069\u200f"), repr(s)
        assert "\ufffd" in s  # the reader sees that something was there


def test_plotly_literal_keeps_quotes_readable():
    # Plotly decodes &lt; &gt; &amp; and numeric entities, not &quot; or &#x27;
    assert plotly_literal('say "hi" it\'s <b>') == 'say "hi" it\'s &lt;b&gt;'


def test_tables_neutralise_lists_headers_index_and_carriage_returns():
    """st.dataframe's toolbar writes the header, the index and each list cell joined by commas,
    and quotes a cell only for a comma, a double quote or a line feed."""
    from app.safe_text import spreadsheet_safe
    from tests.hostile_data import formula_cells_in_csv, frontend_csv

    frame = pd.DataFrame(
        {"=cmd|' /C calc'!A0": [1.0], "releases": [["=2+2", "v1"]], "note": ["\r=1+1"]},
        index=pd.Index(["@SUM(A1)"], name="fingerprint"),
    )
    assert len(formula_cells_in_csv(frontend_csv(frame))) == 4  # header, list, index, \r
    safe = spreadsheet_safe(frame)
    assert formula_cells_in_csv(frontend_csv(safe)) == []
    assert list(safe.columns) == ["'=cmd|' /C calc'!A0", "releases", "note"]
    assert safe["releases"].iloc[0] == ["'=2+2", "v1"] and safe["note"].iloc[0] == "\n'=1+1"
