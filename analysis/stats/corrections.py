"""Multiple-testing corrections across metrics × treatment arms (GrowthBook
`packages/shared/src/experiments/experiments.ts`, F10).

Holm (1979), family-wise error: sort p ascending, p_(i)·(m − i + 1), running max, cap 1.
Benjamini–Hochberg (1995), false discovery rate: sort descending, p_(i)·m/i, running min, cap 1.
Adjusted intervals (GrowthBook's construction): back out the standard error implied by the
adjusted p-value, sd* = |Δ|/z_{1−p_adj/2}, and use Δ ± z_{1−α/2}·sd* when that is wider than
the original interval. Where that construction breaks down (p_adj = 1, where GrowthBook shows
(−∞, ∞)), we fall back to the Bonferroni interval: the original half-width scaled by
z_{1−α/(2m)}/z_{1−α/2}, which is finite and has simultaneous coverage ≥ 1 − α.
Results that are not computable take no part in the family.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy.stats import norm

from analysis.stats.results import Comparison, with_fields

CORRECTIONS = ("none", "holm", "bh")


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


def bonferroni_interval(
    effect: float, ci: tuple[float, float], alpha: float, m: int
) -> tuple[float, float]:
    half = (ci[1] - ci[0]) / 2 * norm.ppf(1 - alpha / (2 * m)) / norm.ppf(1 - alpha / 2)
    return (effect - half, effect + half)


def adjusted_interval(
    effect: float, p_adjusted: float, ci: tuple[float, float], alpha: float, m: int
) -> tuple[float, float]:
    fallback = bonferroni_interval(effect, ci, alpha, m)
    if p_adjusted >= 1.0 or effect == 0 or p_adjusted <= 0:
        return fallback if p_adjusted > 0 else ci
    sd = abs(effect) / norm.ppf(1 - p_adjusted / 2)
    half = norm.ppf(1 - alpha / 2) * sd
    lo, hi = effect - half, effect + half
    if not math.isfinite(half):
        return fallback
    return (lo, hi) if hi - lo > ci[1] - ci[0] else ci


def adjust_comparisons(results: Sequence[Comparison], method: str) -> list[Comparison]:
    """Apply Holm or BH to the computable frequentist results; others pass through."""
    if method == "none" or method not in CORRECTIONS:
        return list(results)
    idx = [
        i
        for i, r in enumerate(results)
        if r.computable and r.method != "bayesian" and math.isfinite(r.p_value)
    ]
    if not idx:
        return list(results)
    raw = [results[i].p_value for i in idx]
    adj = holm(raw) if method == "holm" else benjamini_hochberg(raw)
    out = list(results)
    for i, p in zip(idx, adj, strict=True):
        r = results[i]
        lo, hi = r.ci_low, r.ci_high
        if r.alternative == "two-sided":
            lo, hi = adjusted_interval(r.effect, p, (r.ci_low, r.ci_high), r.alpha, len(idx))
        out[i] = with_fields(
            r,
            p_value=p,
            p_value_unadjusted=r.p_value,
            ci_low=lo,
            ci_high=hi,
            significant=p < r.alpha,
            correction=method,
        )
    return out
