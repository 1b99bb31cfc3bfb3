"""Effect moments: the estimate of treatment vs control and its standard error.

Every test (fixed, sequential, Bayesian) starts here, so degenerate inputs are caught once.
Formulas follow gbstats (`utils.frequentist_diff/frequentist_variance`,
`models/tests.py::EffectMoments`), see reference/ab_testing.md:
  absolute  Δ = μB − μA,           Var = vA/nA + vB/nB
  relative  Δ = (μB − μA)/μA,      Var = vB/(μA²nB) + vA·μB²/(μA⁴nA)   (delta method, F2)
  Welch–Satterthwaite dof = (sA + sB)² / (sA²/(nA−1) + sB²/(nB−1)), s = v/n   (F3)
CUPED pairs go through `analysis.stats.cuped`.
"""

from __future__ import annotations

import math

from analysis.stats.results import EffectEstimate
from analysis.stats.statistics import (
    PostStratified,
    Proportion,
    Quantile,
    Ratio,
    RegressionAdjusted,
    RegressionAdjustedRatio,
    SampleMean,
    Statistic,
)


def _finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def welch_dof(s_a: float, n_a: float, s_b: float, n_b: float) -> float:
    """Welch–Satterthwaite degrees of freedom from per-arm variances of the mean s = v/n."""
    denom = s_a**2 / (n_a - 1) + s_b**2 / (n_b - 1)
    return (s_a + s_b) ** 2 / denom if denom > 0 else math.inf


# Sums over a million units in floating point carry relative rounding of about 1e-12; a
# sum of squares short of (Σx)²/n by more than this share cannot come from any data.
_ROUNDING = 1e-9


def _short_of(sum_squares: float, total: float, n: float) -> bool:
    """Σx² < (Σx)²/n beyond rounding: the sums cannot come from real values."""
    floor = total * total / n
    return sum_squares < floor - _ROUNDING * max(abs(sum_squares), floor, 1e-300)


def inconsistency_reason(stat: Statistic, arm: str) -> str:
    """Why one arm's sufficient statistics cannot come from any data (a sum of squares below
    (Σx)²/n, a count of conversions outside 0..n, a covariance beyond Cauchy-Schwarz), or ""."""
    bad = f"inconsistent input in the {arm} arm: "
    if isinstance(stat, Proportion):
        if stat.sum < 0 or stat.sum > stat.n:
            return bad + f"{stat.sum:g} conversions out of {stat.n} units"
        return ""
    pairs: list[tuple[str, float, float, float]] = []
    if isinstance(stat, SampleMean):
        pairs.append(("the metric", stat.n, stat.sum, stat.sum_squares))
    elif isinstance(stat, Ratio):
        pairs += [
            ("the numerator", stat.n, stat.numerator_sum, stat.numerator_sum_squares),
            ("the denominator", stat.n, stat.denominator_sum, stat.denominator_sum_squares),
        ]
    elif isinstance(stat, RegressionAdjusted):
        post = inconsistency_reason(stat.post, arm)
        if post:
            return post
        if isinstance(stat.pre, SampleMean):
            pairs.append(("the pre-period covariate", stat.n, stat.pre.sum, stat.pre.sum_squares))
    for what, n, total, sum_squares in pairs:
        if n > 0 and _short_of(sum_squares, total, n):
            return (
                bad + f"the sum of squares of {what} ({sum_squares:.6g}) is below "
                f"sum²/n ({total * total / n:.6g}), which no data can give"
            )
    if isinstance(stat, Ratio | RegressionAdjusted) and stat.n > 1:
        if isinstance(stat, Ratio):
            vx, vy = stat.numerator.variance, stat.denominator.variance
        else:
            vx, vy = stat.post.variance, stat.pre.variance
        cov = stat.covariance
        if math.isfinite(cov) and cov * cov > vx * vy * (1 + 1e-6) + 1e-300:
            return bad + "the cross-product sum implies a correlation beyond ±1"
    return ""


def degenerate_reason(stat: Statistic, arm: str) -> str:
    """Why one arm's statistic cannot enter a test, or "" when it can."""
    inconsistent = inconsistency_reason(stat, arm)
    if inconsistent:
        return inconsistent
    if isinstance(stat, RegressionAdjusted | RegressionAdjustedRatio):
        return degenerate_reason(stat.post, arm) or (
            inconsistency_reason(stat.pre, arm) if isinstance(stat, RegressionAdjustedRatio) else ""
        )
    n = stat.units if isinstance(stat, Quantile) else stat.n
    if n <= 0:
        return f"the {arm} arm has no data"
    if n < 2:
        return f"the {arm} arm has fewer than 2 units"
    if isinstance(stat, Proportion):
        if stat.sum <= 0:
            return f"the {arm} arm has no conversions (0 %), so its variance is zero"
        if stat.sum >= stat.n:
            return f"every unit in the {arm} arm converted (100 %), so its variance is zero"
    if isinstance(stat, Ratio) and not stat.denominator_sum:
        return f"the {arm} arm's denominator sums to zero"
    if isinstance(stat, Quantile):
        if not _finite(stat.estimate, stat.lower, stat.upper):
            return f"the {arm} arm has too few observations for a quantile interval"
    v = stat.variance_of_mean
    if not _finite(v, stat.mean):
        return f"the {arm} arm's statistics are not finite numbers"
    if v <= 0:
        return f"every unit in the {arm} arm has the same value, so its variance is zero"
    return ""


def _units(stat: Statistic) -> int:
    return stat.units if isinstance(stat, Quantile) else stat.n


def _dof_units(stat: Statistic) -> float:
    """The n that `welch_dof` turns into an arm's degrees of freedom (n − 1): a
    post-stratified arm brings its own Satterthwaite dof over strata."""
    if isinstance(stat, PostStratified) and math.isfinite(stat.dof):
        return stat.dof + 1
    return _units(stat)


def estimate_effect(
    control: Statistic, treatment: Statistic, relative: bool = False
) -> EffectEstimate:
    """Treatment − control (or relative lift) with its standard error and Welch dof."""
    if type(control) is not type(treatment):
        return EffectEstimate(False, "the two arms hold different kinds of statistics", relative)
    for stat, arm in ((control, "control"), (treatment, "treatment")):
        reason = degenerate_reason(stat, arm)
        if reason:
            return EffectEstimate(
                False,
                reason,
                relative,
                control_mean=_safe_mean(control),
                treatment_mean=_safe_mean(treatment),
            )
    if isinstance(control, RegressionAdjusted) and isinstance(treatment, RegressionAdjusted):
        from analysis.stats.cuped import estimate_cuped_effect

        return estimate_cuped_effect(control, treatment, relative)
    if isinstance(control, RegressionAdjustedRatio) and isinstance(
        treatment, RegressionAdjustedRatio
    ):
        from analysis.stats.cuped import estimate_cuped_ratio_effect

        return estimate_cuped_ratio_effect(control, treatment, relative)

    mu_a, mu_b = control.mean, treatment.mean
    s_a, s_b = control.variance_of_mean, treatment.variance_of_mean
    dof = welch_dof(s_a, _dof_units(control), s_b, _dof_units(treatment))
    if not relative:
        return EffectEstimate(True, "", False, mu_a, mu_b, mu_b - mu_a, math.sqrt(s_a + s_b), dof)
    if mu_a <= 0:
        return EffectEstimate(
            False,
            "relative lift needs a positive control mean"
            f" (control mean is {mu_a:.4g}); use the absolute difference",
            True,
            mu_a,
            mu_b,
        )
    var = s_b / mu_a**2 + s_a * mu_b**2 / mu_a**4
    return EffectEstimate(True, "", True, mu_a, mu_b, (mu_b - mu_a) / mu_a, math.sqrt(var), dof)


def _safe_mean(stat: Statistic) -> float:
    try:
        return float(stat.mean)
    except (ZeroDivisionError, TypeError, ValueError):
        return math.nan
