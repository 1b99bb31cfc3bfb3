"""Release benchmark reports to download: a self-contained HTML page and a CSV.

The HTML needs no network: styles are inline and the chart is a static SVG drawn here (a
forest plot of each row's relative change with its interval, the practical threshold marked).
Both downloads follow analysis.untrusted: every text cell, and in the HTML every text, goes
through `neutralise_cell` (visible characters only, no spreadsheet formula: a spreadsheet opens
an HTML table too), and in the HTML then through `html.escape`. The report's own numbers never
start a cell with a formula character: a negative sign is U+2212 and a positive one is left out.
Numbers are written to the CSV as numbers, in the unit its headers name: rates as
percentages (0-100), their changes in percentage points, latencies in ms.

The report opens with a plain verdict and the few changes that matter, in words and readable
numbers (`readable`, `change_text`), then the detail.
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
    "measure",
    "metric",
    "group",
    "statistic",
    "unit",
    "baseline value (unit)",
    "candidate value (unit)",
    "change (unit; rates in percentage points)",
    "change interval low (unit; rates in points)",
    "change interval high (unit; rates in points)",
    "relative change (%)",
    "relative interval low (%)",
    "relative interval high (%)",
    "p value",
    "significant",
    "flag",
    "verdict",
)
# Rates are fractions in the analysis and percentages in every report.
_SCALE = {"%": 100.0}
# Charts of relative change stop here; a row beyond is drawn at the edge with its value.
CHART_LIMIT = 1.0
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


def _scaled(row: BenchmarkRow, x: float) -> float | None:
    value = _finite(x)
    return None if value is None else value * _SCALE.get(row.unit, 1.0)


def _pct(x: float | None) -> float | None:
    return None if x is None else x * 100


def benchmark_records(comparisons: Sequence[BenchmarkComparison]) -> list[dict[str, Any]]:
    """One plain record per row and comparison (the CSV's rows and the page's table), values
    in the unit named by `unit` (rates as percentages, changes of rates in points)."""
    out = []
    for comp in comparisons:
        for row in comp.rows:
            c = row.comparison
            lo, hi = _relative_interval(row)
            out.append(
                {
                    "baseline": comp.baseline.label,
                    "candidate": comp.candidate.label,
                    "measure": row.title,
                    "metric": row.metric,
                    "group": row.group,
                    "statistic": row.statistic,
                    "unit": row.unit,
                    "baseline value (unit)": _scaled(row, row.baseline.mean),
                    "candidate value (unit)": _scaled(row, row.candidate.mean),
                    "change (unit; rates in percentage points)": _scaled(row, c.effect),
                    "change interval low (unit; rates in points)": _scaled(row, c.ci_low),
                    "change interval high (unit; rates in points)": _scaled(row, c.ci_high),
                    "relative change (%)": _pct(_finite(row.relative_change)),
                    "relative interval low (%)": _pct(lo),
                    "relative interval high (%)": _pct(hi),
                    "p value": _finite(c.p_value),
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


# ------------------------------------------------------------------- in plain words


def readable(x: float | None, unit: str, signed: bool = False) -> str:
    """A value as a product owner reads it: '1.35 s', '850 ms', '2.7 %', '3.92', never
    scientific notation. Rates (unit '%') are fractions in, percentages out."""
    if x is None or not math.isfinite(x):
        return "n/a"
    sign = "+" if signed and x > 0 else ""
    if unit == "ms":
        if abs(x) >= 1000:
            return _minus(f"{sign}{x / 1000:,.2f} s")
        return _minus(f"{sign}{x:,.0f} ms")
    if unit == "%":
        pct = x * 100
        text = f"{pct:,.2f}" if abs(pct) < 10 else f"{pct:,.1f}"
        return _minus(f"{sign}{text} %")
    text = f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"
    return _minus(f"{sign}{text} {unit}".strip())


def _delta(row: BenchmarkRow) -> str | None:
    """The absolute change, unsigned: '2.62 points' for rates, '946 ms', '0.20 MOS'."""
    c = row.comparison
    if not c.computable or not math.isfinite(c.effect):
        return None
    if row.unit == "%":
        points = abs(c.effect) * 100
        return f"{points:.2f} points" if points < 10 else f"{points:.1f} points"
    return readable(abs(c.effect), row.unit)


def change_text(row: BenchmarkRow) -> str:
    """The change in words, for a table cell (which must not start with a sign a spreadsheet
    reads as a formula): 'up 2.62 points', 'down 946 ms (−58 %)'."""
    delta = _delta(row)
    if delta is None:
        return "n/a"
    if row.comparison.effect == 0:
        return "no change"
    way = "up" if row.comparison.effect > 0 else "down"
    rel = _finite(row.relative_change)
    return f"{way} {delta}" + ("" if row.unit == "%" or rel is None else f" ({relative_text(rel)})")


def relative_text(rel: float) -> str:
    """'+58 %', '−24 %', '+2,069 %' (one decimal below 10 %)."""
    return _minus(f"{rel * 100:+,.0f} %" if abs(rel) >= 0.1 else f"{rel * 100:+.1f} %")


def relative_cell(rel: float) -> str:
    """A relative change for a table cell, in words: 'up 58 %', 'down 24 %'."""
    way = "up" if rel > 0 else "down" if rel < 0 else "no change"
    return way if rel == 0 else f"{way} {relative_text(abs(rel))[1:]}"


def p_text(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}" if p < 0.01 else f"{p:.2f}"


def _movement(row: BenchmarkRow) -> str:
    up = row.comparison.effect > 0
    if row.unit == "ms":
        return "got slower" if up else "got faster"
    return "rose" if up else "fell"


def key_changes(comp: BenchmarkComparison, limit: int = 5) -> list[BenchmarkRow]:
    """The changes that matter: regressions, then improvements, largest relative change
    first, one row per measure (the 95th percentile stands for its median and 99th)."""
    flagged = [r for r in comp.rows if r.regression or r.improvement]
    preferred = {"p95": 0, "rate": 0, "mean": 0, "p50": 1, "p99": 2}
    chosen: dict[tuple[str, str], BenchmarkRow] = {}
    for r in sorted(flagged, key=lambda r: preferred.get(r.statistic, 3)):
        chosen.setdefault((r.metric, r.group), r)

    def size(r: BenchmarkRow) -> float:
        rel = r.relative_change
        return abs(rel) if not math.isnan(rel) else 0.0

    ordered = sorted(chosen.values(), key=lambda r: (not r.regression, -size(r), r.title))
    return ordered[:limit]


def key_change_sentence(row: BenchmarkRow) -> str:
    """'LLM time to first token, 95th percentile got slower: 1.62 s → 2.57 s (+950 ms,
    +58 %). Worse.'"""
    judged = "Worse" if row.regression else "Better"
    delta = _delta(row) or "n/a"
    rel = _finite(row.relative_change)
    sign = "+" if row.comparison.effect > 0 else "\u2212"
    detail = f"{sign}{delta}" + (
        "" if row.unit == "%" or rel is None else f", {relative_text(rel)}"
    )
    return (
        f"{row.title} {_movement(row)}: {readable(row.baseline.mean, row.unit)} → "
        f"{readable(row.candidate.mean, row.unit)} ({detail}). {judged}."
    )


def plain_verdict(comp: BenchmarkComparison, threshold: float) -> tuple[str, str]:
    """(tone, one sentence): what a product owner should conclude about the candidate."""
    worse = {(r.metric, r.group) for r in comp.rows if r.regression}
    better = {(r.metric, r.group) for r in comp.rows if r.improvement}
    them = f"{comp.candidate.label} against {comp.baseline.label}"
    if worse:
        return "bad", (
            f"Worse: {comp.candidate.label} made {len(worse)} measure"
            f"{'s' if len(worse) != 1 else ''} clearly worse than {comp.baseline.label}"
            + (f" (and {len(better)} better)." if better else ".")
        )
    if better:
        return "good", (
            f"Better: {comp.candidate.label} improved {len(better)} measure"
            f"{'s' if len(better) != 1 else ''} and made nothing worse than "
            f"{comp.baseline.label}."
        )
    return "neutral", (
        f"No change that matters in {them}: nothing moved by more than "
        f"{threshold * 100:g} % with confidence."
    )


def chart_points(rows: Sequence[BenchmarkRow], limit: float = CHART_LIMIT) -> list[dict[str, Any]]:
    """Per row with a relative change: its value and interval clipped to ±`limit` for the
    chart, whether it was clipped, and the true value as text (drawn at the edge)."""
    out = []
    for r in rows:
        rel = _finite(r.relative_change)
        if rel is None:
            continue
        lo, hi = _relative_interval(r)
        out.append(
            {
                "title": r.title,
                "rel": max(-limit, min(limit, rel)),
                "lo": None if lo is None else max(-limit, min(limit, lo)),
                "hi": None if hi is None else max(-limit, min(limit, hi)),
                "clipped": abs(rel) > limit,
                "label": relative_text(rel),
                "flag": flag(r),
                "verdict": r.verdict,
            }
        )
    return out


# ------------------------------------------------------------------------------- HTML

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}h3{font-size:1rem}
table{border-collapse:collapse;font-size:.85rem;margin-top:.5rem}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child,td.text{text-align:left}
tr.regression{background:#ffebe9}tr.improvement{background:#dafbe1}
.flag-regression{color:#cf222e;font-weight:600}.flag-improvement{color:#1a7f37;font-weight:600}
.muted{color:#656d76;font-size:.85rem}.summary{padding:.6rem 1rem;border-radius:6px}
.bad{background:#ffebe9}.good{background:#dafbe1}
"""


def escape_cell(text: Any) -> str:
    """Text for the HTML reports: no formula a spreadsheet would run, then HTML-escaped."""
    return html.escape(neutralise_cell("" if text is None else str(text)), quote=True)


_e = escape_cell


def _minus(number: str) -> str:
    # U+2212 MINUS SIGN: typographically right, and not a formula character to a spreadsheet
    return number.replace("-", "\u2212")


def _short(text: str, width: int = 46) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def nice_ticks(extent: float) -> list[float]:
    """Round ticks (…, −50 %, 0, +50 %, …) within ±extent, at most four a side."""
    step = next((s / 100 for s in (1, 2, 5, 10, 20, 25, 50, 100) if extent / (s / 100) <= 4), 1.0)
    n = int(extent / step + 1e-9)
    return [i * step for i in range(-n, n + 1)]


def forest_svg(rows: Sequence[BenchmarkRow], threshold: float, width: int = 820) -> str:
    """Relative change (%) and its interval per row; the practical threshold dashed. The axis
    stops at ±CHART_LIMIT so that one huge change does not squash the rest: a row beyond it is
    drawn as an arrow at the edge, labelled with its true value."""
    plotted = chart_points(rows)
    if not plotted:
        return '<p class="muted">No comparable rows to chart.</p>'
    label_w, row_h, top, right = 300, 18, 28, 130
    height = top + row_h * len(plotted) + 30
    extent = max(
        [threshold * 1.5]
        + [abs(float(v)) for p in plotted for v in (p["rel"], p["lo"], p["hi"]) if v is not None]
    )
    extent = min(max(extent, 0.01), CHART_LIMIT) * 1.05
    x0, x1 = label_w, width - right

    def x(v: float) -> float:
        v = max(-extent, min(extent, v))
        return x0 + (v + extent) / (2 * extent) * (x1 - x0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-label="Relative change per measure with intervals" font-size="11" '
        'font-family="system-ui,sans-serif">',
        f'<line x1="{x(0):.1f}" y1="{top - 8}" x2="{x(0):.1f}" y2="{height - 24}" '
        'stroke="#57606a"/>',
    ]
    for t in (-threshold, threshold):
        parts.append(
            f'<line x1="{x(t):.1f}" y1="{top - 8}" x2="{x(t):.1f}" y2="{height - 24}" '
            'stroke="#bf8700" stroke-dasharray="4 3"/>'
        )
    for tick in nice_ticks(extent):
        parts.append(
            f'<text x="{x(tick):.1f}" y="{height - 8}" text-anchor="middle" fill="#57606a">'
            f"{_minus(f'{tick * 100:+.0f} %')}</text>"
        )
    parts.append(
        f'<text x="{x(threshold):.1f}" y="{top - 12}" text-anchor="middle" fill="#bf8700">'
        f"threshold ±{threshold * 100:g} %</text>"
    )
    for i, p in enumerate(plotted):
        y = top + i * row_h + row_h / 2
        color = {REGRESSION: "#cf222e", IMPROVEMENT: "#1a7f37"}.get(p["flag"], "#57606a")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end">'
            f"<title>{_e(p['title'])}</title>{_e(_short(p['title']))}</text>"
        )
        if p["lo"] is not None and p["hi"] is not None:
            parts.append(
                f'<line x1="{x(p["lo"]):.1f}" y1="{y:.1f}" x2="{x(p["hi"]):.1f}" y2="{y:.1f}" '
                f'stroke="{color}" stroke-width="2"/>'
            )
        cx = x(p["rel"])
        if p["clipped"]:
            # an arrow at the axis' end, pointing the way the value went, and the value
            d = 1 if p["rel"] > 0 else -1
            parts.append(
                f'<polygon points="{cx - 6 * d:.1f},{y - 5:.1f} {cx + 4 * d:.1f},{y:.1f} '
                f'{cx - 6 * d:.1f},{y + 5:.1f}" fill="{color}" class="clipped">'
                f"<title>{_e(p['verdict'])}</title></polygon>"
                f'<text x="{cx + 8 * d:.1f}" y="{y + 4:.1f}" fill="{color}" '
                f'text-anchor="{"start" if d > 0 else "end"}">'
                f"{_e('off scale: ' + p['label'])}</text>"
            )
        else:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                f"<title>{_e(p['verdict'])}</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def readable_rows(comp: BenchmarkComparison) -> list[dict[str, str]]:
    """The page's table: one row per measure in words and readable numbers, flagged first."""
    out = []
    for row in sorted(comp.rows, key=lambda r: (not r.regression, not r.improvement, r.title)):
        lo, hi = _relative_interval(row)
        rel = _finite(row.relative_change)
        interval = (
            _minus(f"{lo * 100:,.1f} % to {hi * 100:,.1f} %")
            if lo is not None and hi is not None
            else ""
        )
        out.append(
            {
                "Measure": row.title,
                "Baseline": readable(row.baseline.mean, row.unit),
                "Candidate": readable(row.candidate.mean, row.unit),
                "Change": change_text(row),
                "Relative change": "n/a" if rel is None else relative_cell(rel),
                "Interval": interval,
                "p value": p_text(_finite(row.comparison.p_value)),
                "Flag": flag(row),
                "Verdict": row.verdict,
            }
        )
    return out


def _table(comp: BenchmarkComparison) -> str:
    # At equal load the values are each slice weighted to the shared load mix, not as it ran.
    at = " (at equal load)" if comp.adjustment.startswith("Compared at equal") else ""
    head = (
        f"<tr><th>Measure</th><th>Baseline{at}</th><th>Candidate{at}</th><th>Change</th>"
        f"<th>Relative change ({_e(interval_label([comp]))})</th><th>p value</th><th>Flag</th>"
        "<th>Verdict</th></tr>"
    )
    body = []
    for row in sorted(comp.rows, key=lambda r: (not r.regression, not r.improvement, r.title)):
        lo, hi = _relative_interval(row)
        rel = _finite(row.relative_change)
        relative = "n/a" if rel is None else relative_cell(rel)
        if lo is not None and hi is not None:
            relative += _minus(f" ({lo * 100:,.1f} to {hi * 100:,.1f})")
        marker = flag(row)
        klass = marker.lower()
        body.append(
            f'<tr class="{klass}"><td>{_e(row.title)}</td>'
            f"<td>{_e(readable(row.baseline.mean, row.unit))}</td>"
            f"<td>{_e(readable(row.candidate.mean, row.unit))}</td>"
            f"<td>{_e(change_text(row))}</td>"
            f"<td>{_e(relative)}</td>"
            f"<td>{_e(p_text(_finite(row.comparison.p_value)))}</td>"
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
    """A self-contained HTML report (no scripts, no external resources): per comparison a
    plain verdict and the changes that matter first, then how it was compared, the chart and
    every measure."""
    settings = settings or BenchmarkSettings()
    generated_at = generated_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    sections = []
    for comp in comparisons:
        tone, sentence = plain_verdict(comp, settings.practical_threshold)
        changes = key_changes(comp)
        listed = "".join(f"<li>{_e(key_change_sentence(r))}</li>" for r in changes)
        sections.append(
            f"<h2>{_e(slice_label(comp.candidate))} vs {_e(slice_label(comp.baseline))}</h2>"
            f'<p class="summary {tone}"><strong>{_e(sentence)}</strong></p>'
            + (f"<h3>What changed</h3><ul>{listed}</ul>" if listed else "")
            + "<h3>How it was compared</h3>"
            + (f'<p class="muted">{_e(comp.adjustment)}</p>' if comp.adjustment else "")
            + "<h3>Every measure</h3>"
            + forest_svg(comp.rows, settings.practical_threshold)
            + _table(comp)
        )
    note_html = "".join(f"<li>{_e(n)}</li>" for n in notes)
    method = (
        f"A change is flagged when it is significant at α = {settings.alpha:g} after "
        f"{_e(settings.correction)} correction across the measures of a comparison and larger "
        f"than the practical threshold of {settings.practical_threshold * 100:g} %. "
        "Percentiles carry order-statistic intervals (Woodruff's, when weighted to equal "
        "traffic load); rates and means carry normal (Welch) intervals. Rates are in %, their "
        "changes in percentage points."
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        + "".join(sections)
        + f'<h2>Method</h2><p class="muted">Generated {generated_at:%Y-%m-%d %H:%M} UTC. '
        f"{method}</p>"
        + (f"<ul class='muted'>{note_html}</ul>" if note_html else "")
        + "</body></html>"
    )
