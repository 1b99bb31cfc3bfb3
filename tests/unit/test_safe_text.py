"""Untrusted text reaches the screen as typed: never as Markdown, HTML, links or math."""

from __future__ import annotations

import pytest

from app.safe_text import markdown_literal, plotly_literal, quote_block

# An independent CommonMark implementation checks what the escaped text renders to.
md = pytest.importorskip("markdown_it").MarkdownIt("commonmark")

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
    # the only markup allowed in the output is the HTML escaping of the characters themselves
    assert html.unescape(rendered_text(markdown_literal(text))) == expected
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
    assert plotly_literal('<a href="javascript:x">y</a>') == (
        "&lt;a href=&quot;javascript:x&quot;&gt;y&lt;/a&gt;"
    )
    assert plotly_literal(None) == ""


def test_tables_neutralise_spreadsheet_formulas_in_text_cells_only():
    import pandas as pd

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
