"""Release benchmark reports to download: a self-contained HTML page and a CSV.

The HTML needs no network: styles are inline and the chart is a static SVG drawn here (a
forest plot of each row's relative change with its interval, the practical threshold marked).
Both downloads follow analysis.untrusted: every text cell, and in the HTML every text, goes
through `neutralise_cell` (visible characters only, no spreadsheet formula: a spreadsheet opens
an HTML table too), and in the HTML then through `html.escape`. The report's own numbers never
start a cell with a formula character: a negative sign is U+2212 and a positive one is left out.
Numbers are written to the CSV as numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import math
from collections.abc import Sequence
from typing import Any

from analysis.benchmarks import BenchmarkComparison, BenchmarkRow, BenchmarkSettings, Slice
from analysis.untrusted import neutralise_cell

CSV_COLUMNS = (
    "baseline",
    "candidate",
    "metric",
    "group",
    "statistic",
    "unit",
    "baseline_value",
    "candidate_value",
    "change",
    "ci_low",
    "ci_high",
    "relative_change_pct",
    "relative_ci_low_pct",
    "relative_ci_high_pct",
    "p_value",
    "significant",
    "flag",
    "verdict",
)
REGRESSION = "Regression"
IMPROVEMENT = "Improvement"


def slice_label(s: Slice) -> str:
    if s.release is not None:
        return s.label
    fmt = "%Y-%m-%d %H:%M"
    start = s.start.strftime(fmt) if s.start else "the beginning"
    end = s.end.strftime(fmt) if s.end else "now"
    return f"{s.label} ({start} to {end} UTC)"


def _finite(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def interval_label(comparisons: Sequence[BenchmarkComparison]) -> str:
    """What the relative intervals are: their level, their correction, and the approximation."""
    tests = [r.comparison for comp in comparisons for r in comp.rows if r.comparison.computable]
    if not tests:
        return "interval"
    level = f"{(1 - tests[0].alpha) * 100:g} %"
    correction = tests[0].correction
    adjusted = f", {correction}-adjusted" if correction else ""
    return f"{level} interval{adjusted}; relative to the baseline value, taken as fixed"


def _relative_interval(row: BenchmarkRow) -> tuple[float | None, float | None]:
    # The absolute interval over the baseline value: it ignores the baseline's own uncertainty,
    # which interval_label says; with thousands of events per slice that term is small.
    mu = row.baseline.mean
    c = row.comparison
    if not (c.computable and mu and math.isfinite(mu) and mu > 0):
        return None, None
    return _finite(c.ci_low / mu), _finite(c.ci_high / mu)


def flag(row: BenchmarkRow) -> str:
    return REGRESSION if row.regression else IMPROVEMENT if row.improvement else ""


def benchmark_records(comparisons: Sequence[BenchmarkComparison]) -> list[dict[str, Any]]:
    """One plain record per row and comparison (the CSV's rows and the page's table)."""
    out = []
    for comp in comparisons:
        for row in comp.rows:
            c = row.comparison
            lo, hi = _relative_interval(row)
            rel = _finite(row.relative_change)
            out.append(
                {
                    "baseline": comp.baseline.label,
                    "candidate": comp.candidate.label,
                    "metric": row.metric,
                    "group": row.group,
                    "statistic": row.statistic,
                    "unit": row.unit,
                    "baseline_value": _finite(row.baseline.mean),
                    "candidate_value": _finite(row.candidate.mean),
                    "change": _finite(c.effect),
                    "ci_low": _finite(c.ci_low),
                    "ci_high": _finite(c.ci_high),
                    "relative_change_pct": None if rel is None else rel * 100,
                    "relative_ci_low_pct": None if lo is None else lo * 100,
                    "relative_ci_high_pct": None if hi is None else hi * 100,
                    "p_value": _finite(c.p_value),
                    "significant": bool(c.computable and c.significant),
                    "flag": flag(row),
                    "verdict": row.verdict,
                }
            )
    return out


def benchmark_csv(comparisons: Sequence[BenchmarkComparison]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for record in benchmark_records(comparisons):
        writer.writerow(
            ["" if record[k] is None else neutralise_cell(record[k]) for k in CSV_COLUMNS]
        )
    return buffer.getvalue()


# ------------------------------------------------------------------------------- HTML

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem;margin-top:.5rem}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child,td.text{text-align:left}
tr.regression{background:#ffebe9}tr.improvement{background:#dafbe1}
.flag-regression{color:#cf222e;font-weight:600}.flag-improvement{color:#1a7f37;font-weight:600}
.muted{color:#656d76;font-size:.85rem}.summary{padding:.6rem 1rem;border-radius:6px}
.bad{background:#ffebe9}.good{background:#dafbe1}
"""


def _e(text: Any) -> str:
    return html.escape(neutralise_cell("" if text is None else str(text)), quote=True)


def _minus(number: str) -> str:
    # U+2212 MINUS SIGN: typographically right, and not a formula character to a spreadsheet
    return number.replace("-", "\u2212")


def _num(x: float | None, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    return _minus(f"{x:,.{digits}g}" if abs(x) < 1e5 else f"{x:,.0f}")


def _value(row: BenchmarkRow, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if row.unit == "%":
        return _minus(f"{x * 100:.2f} %")
    return f"{_num(x)} {row.unit}".strip()


def forest_svg(rows: Sequence[BenchmarkRow], threshold: float, width: int = 760) -> str:
    """Relative change (%) and its interval per row; the practical threshold dashed."""
    plotted = [
        (r, rel, *_relative_interval(r))
        for r in rows
        if (rel := _finite(r.relative_change)) is not None
    ]
    if not plotted:
        return '<p class="muted">No comparable rows to chart.</p>'
    label_w, row_h, top = 260, 18, 28
    height = top + row_h * len(plotted) + 30
    extent = max(
        [threshold * 1.5]
        + [abs(v) for _, rel, lo, hi in plotted for v in (rel, lo, hi) if v is not None]
    )
    extent = min(max(extent, 0.01), 2.0) * 1.05
    x0, x1 = label_w, width - 20

    def x(v: float) -> float:
        v = max(-extent, min(extent, v))
        return x0 + (v + extent) / (2 * extent) * (x1 - x0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Relative change per metric with intervals" font-size="11" '
        'font-family="system-ui,sans-serif">',
        f'<line x1="{x(0):.1f}" y1="{top - 8}" x2="{x(0):.1f}" y2="{height - 24}" '
        'stroke="#57606a"/>',
    ]
    for t in (-threshold, threshold):
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top - 8}" x2="{x(t):.1f}" y2="{height - 24}" '
            'stroke="#bf8700" stroke-dasharray="4 3"/>'
        )
    for tick in (-extent, -extent / 2, 0.0, extent / 2, extent):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle" fill="#57606a">'
            f"{tick * 100:+.0f} %</text>"
        )
    parts.append(
        f'<text x="{x(threshold):.1f}" y="{top - 12}" text-anchor="middle" fill="#bf8700">'
        f"threshold ±{threshold * 100:g} %</text>"
    )
    for i, (row, rel, lo, hi) in enumerate(plotted):
        y = top + i * row_h + row_h / 2
        color = "#cf222e" if row.regression else "#1a7f37" if row.improvement else "#57606a"
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end">{_e(row.name)}</text>'
        )
        if lo is not None and hi is not None:
            parts.append(
                f'<line x1="{x(lo):.1f}" y1="{y:.1f}" x2="{x(hi):.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        parts.append(
            f'<circle cx="{x(rel):.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
            f"<title>{_e(row.verdict)}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _table(comp: BenchmarkComparison) -> str:
    # At equal load the values are each slice weighted to the shared load mix, not as it ran.
    at = " (at equal load)" if comp.adjustment else ""
    head = (
        f"<tr><th>Metric</th><th>Baseline{at}</th><th>Candidate{at}</th><th>Change</th>"
        f"<th>Relative ({_e(interval_label([comp]))})</th><th>p</th><th>Flag</th>"
        "<th>Verdict</th></tr>"
    )
    body = []
    for row in sorted(comp.rows, key=lambda r: (not r.regression, not r.improvement, r.name)):
        c = row.comparison
        lo, hi = _relative_interval(row)
        rel = _finite(row.relative_change)
        relative = "n/a" if rel is None else _minus(f"{rel * 100:.1f} %")
        if lo is not None and hi is not None:
            relative += _minus(f" ({lo * 100:.1f} to {hi * 100:.1f})")
        marker = flag(row)
        klass = marker.lower()
        body.append(
            f'<tr class="{klass}"><td>{_e(row.name)}</td>'
            f"<td>{_e(_value(row, row.baseline.mean))}</td>"
            f"<td>{_e(_value(row, row.candidate.mean))}</td>"
            f"<td>{_e(_value(row, c.effect) if c.computable else 'n/a')}</td>"
            f"<td>{_e(relative)}</td>"
            f"<td>{_e(_num(_finite(c.p_value), 2))}</td>"
            f'<td class="flag-{klass}">{_e(marker)}</td>'
            f'<td class="text">{_e(row.verdict)}</td></tr>'
        )
    return f"<table>{head}{''.join(body)}</table>"


def benchmark_html(
    comparisons: Sequence[BenchmarkComparison],
    settings: BenchmarkSettings | None = None,
    title: str = "Release benchmark",
    generated_at: dt.datetime | None = None,
    notes: Sequence[str] = (),
) -> str:
    """A self-contained HTML report (no scripts, no external resources)."""
    settings = settings or BenchmarkSettings()
    generated_at = generated_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sections = []
    for comp in comparisons:
        regressions = comp.regressions
        if regressions:
            summary = (
                f'<p class="summary bad"><strong>{len(regressions)} regression'
                f"{'s' if len(regressions) != 1 else ''} flagged</strong>: "
                + "; ".join(_e(r.verdict) for r in regressions)
                + "</p>"
            )
        else:
            summary = (
                '<p class="summary good">No regression flagged: nothing got significantly '
                f"worse by more than {settings.practical_threshold * 100:g} %.</p>"
            )
        sections.append(
            f"<h2>{_e(slice_label(comp.candidate))} vs {_e(slice_label(comp.baseline))}</h2>"
            + summary
            + (f'<p class="muted">{_e(comp.adjustment)}</p>' if comp.adjustment else "")
            + forest_svg(comp.rows, settings.practical_threshold)
            + _table(comp)
        )
    note_html = "".join(f"<li>{_e(n)}</li>" for n in notes)
    method = (
        f"Regression: significant at α = {settings.alpha:g} after "
        f"{_e(settings.correction)} correction across the rows of a comparison, in the worse "
        f"direction, and larger than the practical threshold of "
        f"{settings.practical_threshold * 100:g} %. Percentiles carry order-statistic "
        "intervals (Woodruff's, when weighted to equal traffic load); rates and means carry "
        "normal (Welch) intervals."
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="muted">Generated {generated_at:%Y-%m-%d %H:%M} UTC. {method}</p>'
        + (f"<ul class='muted'>{note_html}</ul>" if note_html else "")
        + "".join(sections)
        + "</body></html>"
    )
