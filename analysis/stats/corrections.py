"""Multiple-testing corrections across metrics × treatment arms (GrowthBook
`packages/shared/src/experiments/experiments.ts`, F10, for the p-values).

p-values: Holm (1979), family-wise error: sort p ascending, p_(i)·(m − i + 1), running max,
cap 1. Benjamini–Hochberg (1995), false discovery rate: sort descending, p_(i)·m/i, running
min, cap 1.

Intervals are rebuilt by each result's own method at a per-comparison level, so they keep
their meaning (a sequential result stays a confidence sequence, valid under peeking; a
fixed-horizon Welch interval keeps its t quantiles at its dof):
  Holm: Bonferroni intervals at α/m, simultaneous coverage ≥ 1 − α over the m comparisons
    (Holm's step-down has no interval of its own of this form; Bonferroni's is the usual
    companion, and never narrower than Holm needs).
  BH: false-coverage-rate intervals at α·R/m, R the number of BH discoveries (at least 1)
    (Benjamini & Yekutieli 2005, "False discovery rate-adjusted multiple confidence
    intervals"): they exclude 0 exactly for the discoveries.
(GrowthBook instead backs a standard error out of the adjusted p-value and rebuilds a
fixed-horizon z interval, which leaves a sequential interval unadjusted.)
Results that are not computable, and Bayesian ones (no p-value), take no part in the family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from analysis.stats.frequentist import interval_at
from analysis.stats.results import Comparison, with_fields

CORRECTIONS = ("none", "holm", "bh")
CORRECTION_NAMES = {"none": "none", "holm": "Holm", "bh": "Benjamini-Hochberg"}


def holm(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, p_values[i] * (m - rank)))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for k, i in enumerate(order):
        rank = m - k  # 1-based rank in ascending order
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(running, 1.0)
    return adjusted


def per_comparison_alpha(method: str, alpha: float, m: int, discoveries: int = 0) -> float:
    """The α each interval is taken at: α/m (Holm, Bonferroni intervals), α·max(R, 1)/m (BH,
    Benjamini-Yekutieli), α when there is no correction or a single comparison."""
    if method not in ("holm", "bh") or m <= 1:
        return alpha
    if method == "bh":
        return alpha * max(discoveries, 1) / m
    return alpha / m


def in_family(result: Comparison) -> bool:
    return result.computable and result.method != "bayesian" and math.isfinite(result.p_value)


def adjust_comparisons(results: Sequence[Comparison], method: str) -> list[Comparison]:
    """Apply Holm or BH to the computable frequentist results; others pass through."""
    if method == "none" or method not in CORRECTIONS:
        return list(results)
    idx = [i for i, r in enumerate(results) if in_family(r)]
    if not idx:
        return list(results)
    raw = [results[i].p_value for i in idx]
    adj = holm(raw) if method == "holm" else benjamini_hochberg(raw)
    out = list(results)
    for i, p in zip(idx, adj, strict=True):
        r = results[i]
        discoveries = sum(q < r.alpha for q in adj)
        level = per_comparison_alpha(method, r.alpha, len(idx), discoveries)
        lo, hi = interval_at(r, level)
        out[i] = with_fields(
            r,
            p_value=p,
            p_value_unadjusted=r.p_value,
            ci_low=lo,
            ci_high=hi,
            significant=p < r.alpha,
            correction=method,
            interval_alpha=level,
        )
    return out


def interval_statement(results: Sequence[Comparison]) -> str:
    """One sentence on what the intervals in `results` are: their level, and the correction
    with its per-comparison level, or that there is none. "" when nothing is computable."""
    shown = [r for r in results if r.computable]
    if not shown:
        return ""
    if all(r.method == "bayesian" for r in shown):
        level = shown[0].level
        return (
            f"Intervals are {level * 100:.4g} % credible intervals; Bayesian results are not "
            "adjusted for multiple comparisons."
        )
    family = [r for r in shown if in_family(r)]
    alpha = family[0].alpha if family else shown[0].alpha
    kind = {"sequential": "confidence sequences (valid however often you look)"}.get(
        family[0].method if family else "", "confidence intervals"
    )
    corrected = [r for r in family if r.correction in ("holm", "bh")]
    if not corrected or len(family) < 2:
        return (
            f"Intervals are {(1 - alpha) * 100:.4g} % {kind}, not adjusted for multiple "
            "comparisons."
        )
    name = CORRECTION_NAMES[corrected[0].correction]
    each = corrected[0].level * 100
    if corrected[0].correction == "holm":
        return (
            f"Intervals are {kind} adjusted for {len(family)} comparisons ({name} p-values; "
            f"each interval at {each:.4g} %, so together they cover at "
            f"{(1 - alpha) * 100:.4g} %)."
        )
    return (
        f"Intervals are {kind} adjusted for {len(family)} comparisons ({name} p-values; "
        f"each interval at {each:.4g} %, which keeps the false coverage rate of the "
        f"significant ones at {alpha * 100:.4g} %)."
    )
