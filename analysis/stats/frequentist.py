"""Frequentist tests: fixed-horizon Welch t and sequential always-valid intervals.

Fixed: Welch's unequal-variance t test with Satterthwaite dof (gbstats
`frequentist/tests.py::TwoSidedTTest`, `OneSidedTreatment{Greater,Lesser}TTest`; F3):
  t = (Δ − Δ0)/se;  two-sided p = 2(1 − F_t(|t|));  CI = Δ ± t_{1−α/2, dof}·se
  one-sided "greater": p = 1 − F_t(t), CI = [Δ − t_{1−α}·se, ∞); "less" mirrors it.
Sequential: asymptotic confidence sequences (Waudby-Smith, Ramdas et al. 2023,
"Time-uniform central limit theory and asymptotic confidence sequences", the normal-mixture
boundary of Howard et al. 2021), as gbstats `SequentialTwoSidedTTest` (F6). The tuning
parameter N* (`tuning_n`, default 5000 units over the two arms) is the sample size at which
the interval is narrowest; it sets the mixture width
  ρ = sqrt((−2 ln α + ln(−2 ln α + 1)) / N*)
  half-width = se·sqrt(2(Nρ² + 1)·ln(sqrt(Nρ² + 1)/α) / (Nρ²)),  N = nA + nB
and the always-valid p-value is min(1, 1/E) with the mixture e-value
  E = exp(ρ²Δ²N / (2se²(Nρ² + 1))) / sqrt(Nρ² + 1),
so p < α exactly when the interval excludes 0. Valid under continuous monitoring (peeking).
One-sided sequential ("greater": is treatment − control above 0?) mixes over positive effects
only: with z = Δ/se and v = Nρ², the half-normal mixture (Howard, Ramdas, McAuliffe & Sekhon
2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences", the one-sided normal
mixture) gives the e-value
  E⁺(z) = 2·exp(z²v/(2(v + 1)))/sqrt(v + 1)·Φ(z·sqrt(v/(v + 1))),
p = min(1, 1/E⁺(z)), and the bound Δ − c·se with E⁺(c) = 1/α ("less" mirrors it). c lies
below the two-sided factor, so a one-sided question gets the narrower bound it is owed.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.stats import fisher_exact, norm
from scipy.stats import t as student_t

from analysis.experiment_rules import Alternative, Method
from analysis.stats.effects import estimate_effect
from analysis.stats.results import Comparison, EffectEstimate, not_computable
from analysis.stats.statistics import Proportion, Quantile, Statistic

ALTERNATIVES: tuple[Alternative, ...] = ("two-sided", "greater", "less")
DEFAULT_SEQUENTIAL_TUNING_N = 5000


def _not_computable_from(
    est: EffectEstimate, method: Method, alpha: float, alt: Alternative
) -> Comparison:
    return not_computable(
        est.reason,
        method,
        est.relative,
        alpha,
        alternative=alt,
        control_mean=est.control_mean,
        treatment_mean=est.treatment_mean,
        theta=est.theta,
    )


def _check_alpha(alpha: float) -> str:
    if not (isinstance(alpha, int | float) and 0 < alpha < 1):
        return f"alpha must be between 0 and 1 (got {alpha!r})"
    return ""


def welch_test(
    control: Statistic,
    treatment: Statistic,
    relative: bool = False,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
) -> Comparison:
    """Fixed-horizon Welch t test of treatment vs control (`null` is the tested Δ0)."""
    reason = _check_alpha(alpha) or (
        "" if alternative in ALTERNATIVES else f"alternative must be one of {ALTERNATIVES}"
    )
    if reason:
        return not_computable(reason, "fixed", relative, alpha, alternative=alternative)
    est = estimate_effect(control, treatment, relative)
    if not est.computable:
        return _not_computable_from(est, "fixed", alpha, alternative)
    return welch_from_estimate(est, alternative, alpha, null)


def welch_from_estimate(
    est: EffectEstimate,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    null: float = 0.0,
) -> Comparison:
    tstat = (est.effect - null) / est.se
    dof = est.dof
    if alternative == "two-sided":
        p = 2 * student_t.sf(abs(tstat), dof)
        half = student_t.ppf(1 - alpha / 2, dof) * est.se
        lo, hi = est.effect - half, est.effect + half
    elif alternative == "greater":
        p = student_t.sf(tstat, dof)
        lo, hi = est.effect - student_t.ppf(1 - alpha, dof) * est.se, math.inf
    else:
        p = student_t.cdf(tstat, dof)
        lo, hi = -math.inf, est.effect + student_t.ppf(1 - alpha, dof) * est.se
    p = float(min(max(p, 0.0), 1.0))
    return Comparison(
        True,
        "",
        "fixed",
        est.relative,
        alpha,
        alternative,
        est.control_mean,
        est.treatment_mean,
        est.effect,
        est.se,
        float(lo),
        float(hi),
        p,
        dof,
        significant=p < alpha,
        theta=est.theta,
        note=est.note,
        interval_alpha=alpha,
    )


def welch_interval(
    effect: float, se: float, dof: float, alpha: float, alternative: Alternative = "two-sided"
) -> tuple[float, float]:
    """Welch interval at `alpha` with Student t quantiles at `dof` (normal when dof is not a
    finite number, e.g. an exact test's interval rebuilt at another level)."""
    one_sided = alternative != "two-sided"
    q = 1 - alpha if one_sided else 1 - alpha / 2
    crit = float(student_t.ppf(q, dof)) if math.isfinite(dof) and dof > 0 else float(norm.ppf(q))
    if alternative == "greater":
        return effect - crit * se, math.inf
    if alternative == "less":
        return -math.inf, effect + crit * se
    return effect - crit * se, effect + crit * se


def sequential_rho(alpha: float, tuning_n: float) -> float:
    """Mixture width ρ that makes the confidence sequence tightest at N = tuning_n."""
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n)


def sequential_halfwidth_factor(n_total: float, alpha: float, tuning_n: float) -> float:
    """Half-width of the confidence sequence in standard errors (replaces z_{1−α/2})."""
    rho = sequential_rho(alpha, tuning_n)
    v = n_total * rho**2
    return math.sqrt(2 * (v + 1) * math.log(math.sqrt(v + 1) / alpha) / v)


def one_sided_log_e(z: float, v: float) -> float:
    """log E⁺(z) of the one-sided (half-normal) mixture, see the module docstring."""
    return (
        math.log(2.0)
        + z * z * v / (2 * (v + 1))
        - 0.5 * math.log(v + 1)
        + float(norm.logcdf(z * math.sqrt(v / (v + 1))))
    )


def sequential_one_sided_factor(n_total: float, alpha: float, tuning_n: float) -> float:
    """c with E⁺(c) = 1/α: the one-sided confidence sequence's bound in standard errors."""
    v = n_total * sequential_rho(alpha, tuning_n) ** 2
    target = -math.log(alpha)
    hi = sequential_halfwidth_factor(n_total, alpha, tuning_n) + 1.0
    while one_sided_log_e(hi, v) < target:  # never more than a step or two
        hi *= 2
    return float(brentq(lambda c: one_sided_log_e(c, v) - target, 0.0, hi, xtol=1e-12))


def sequential_test(
    control: Statistic,
    treatment: Statistic,
    relative: bool = False,
    alpha: float = 0.05,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    alternative: Alternative = "two-sided",
) -> Comparison:
    """Always-valid interval and p-value (safe to look at every day); one-sided when
    `alternative` is "greater" or "less"."""
    reason = (
        _check_alpha(alpha)
        or ("" if tuning_n > 0 else "tuning_n must be positive")
        or ("" if alternative in ALTERNATIVES else f"alternative must be one of {ALTERNATIVES}")
    )
    if reason:
        return not_computable(reason, "sequential", relative, alpha, alternative=alternative)
    est = estimate_effect(control, treatment, relative)
    if not est.computable:
        return _not_computable_from(est, "sequential", alpha, alternative)
    n_total = _units(control) + _units(treatment)
    return sequential_from_estimate(est, n_total, alpha, tuning_n, alternative)


def sequential_interval(
    effect: float,
    se: float,
    n_total: float,
    alpha: float,
    tuning_n: float,
    alternative: Alternative = "two-sided",
) -> tuple[float, float]:
    """The confidence sequence at `alpha` (at N = n_total units over both arms)."""
    if alternative == "two-sided":
        half = se * sequential_halfwidth_factor(n_total, alpha, tuning_n)
        return effect - half, effect + half
    bound = se * sequential_one_sided_factor(n_total, alpha, tuning_n)
    return (effect - bound, math.inf) if alternative == "greater" else (-math.inf, effect + bound)


def sequential_from_estimate(
    est: EffectEstimate,
    n_total: int,
    alpha: float = 0.05,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    alternative: Alternative = "two-sided",
) -> Comparison:
    rho = sequential_rho(alpha, tuning_n)
    v = n_total * rho**2
    z = est.effect / est.se
    if alternative == "two-sided":
        log_e = z * z * v / (2 * (v + 1)) - 0.5 * math.log(v + 1)
    else:
        log_e = one_sided_log_e(z if alternative == "greater" else -z, v)
    p = 1.0 if log_e <= 0 else min(1.0, math.exp(-log_e))
    lo, hi = sequential_interval(est.effect, est.se, n_total, alpha, tuning_n, alternative)
    return Comparison(
        True,
        "",
        "sequential",
        est.relative,
        alpha,
        alternative,
        est.control_mean,
        est.treatment_mean,
        est.effect,
        est.se,
        lo,
        hi,
        p,
        est.dof,
        significant=p < alpha,
        theta=est.theta,
        note=est.note,
        interval_alpha=alpha,
        units=int(n_total),
        tuning_n=float(tuning_n),
    )


def interval_at(result: Comparison, alpha: float) -> tuple[float, float]:
    """`result`'s interval rebuilt at another α (a multiple-testing correction's
    per-comparison level) by its own method: the confidence sequence for sequential results,
    Welch with t quantiles at its dof for fixed ones. An exact (Fisher/Newcombe) interval has
    no dof: its sides are scaled by the ratio of normal quantiles."""
    if result.method == "sequential" and result.units > 0 and math.isfinite(result.tuning_n):
        return sequential_interval(
            result.effect, result.se, result.units, alpha, result.tuning_n, result.alternative
        )
    if math.isfinite(result.dof):
        return welch_interval(result.effect, result.se, result.dof, alpha, result.alternative)
    old = result.interval_alpha if math.isfinite(result.interval_alpha) else result.alpha
    scale = float(norm.ppf(1 - alpha / 2) / norm.ppf(1 - old / 2))
    return (
        result.effect - (result.effect - result.ci_low) * scale,
        result.effect + (result.ci_high - result.effect) * scale,
    )


def _units(stat: Statistic) -> int:
    if isinstance(stat, Quantile):
        return stat.units
    return stat.n


def wilson_interval(
    successes: npt.ArrayLike, n: npt.ArrayLike, alpha: float = 0.05
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Wilson score interval for a proportion (Wilson 1927), elementwise over arrays:
    centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1−p)/n + z²/4n²)/(1 + z²/n)."""
    z = float(norm.ppf(1 - alpha / 2))
    n = np.asarray(n, dtype=float)
    p = np.asarray(successes, dtype=float) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def exact_two_proportions(
    control: Proportion, treatment: Proportion, alpha: float = 0.05
) -> Comparison:
    """Treatment − control for two proportions when one of them is 0 % or 100 %.

    Welch's t has no variance to work with there (a release going from no 5xx to some), so:
    p-value from Fisher's exact test on the 2x2 table; interval by Newcombe's hybrid score
    method (Newcombe 1998, method 10: Wilson limits of each arm combined), which stays inside
    [-1, 1] and is well behaved at 0 and 1.
    """
    reason = _check_alpha(alpha)
    for stat, arm in ((control, "control"), (treatment, "treatment")):
        if stat.n < 2:
            reason = reason or f"the {arm} arm has fewer than 2 units"
    if reason:
        return not_computable(reason, "fixed", False, alpha)
    table = [
        [treatment.sum, treatment.n - treatment.sum],
        [control.sum, control.n - control.sum],
    ]
    p_value = float(fisher_exact(table, alternative="two-sided").pvalue)
    z = float(norm.ppf(1 - alpha / 2))
    p_a, p_b = control.mean, treatment.mean
    l_a, u_a = (float(v) for v in wilson_interval(control.sum, control.n, alpha))
    l_b, u_b = (float(v) for v in wilson_interval(treatment.sum, treatment.n, alpha))
    d = p_b - p_a
    low = d - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)
    high = d + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)
    return Comparison(
        True,
        "",
        "fixed",
        False,
        alpha,
        "two-sided",
        p_a,
        p_b,
        d,
        (high - low) / (2 * z),  # the interval's half-width in standard errors
        low,
        high,
        p_value,
        significant=p_value < alpha,
        interval_alpha=alpha,
        note="Fisher's exact test and Newcombe's score interval (an arm at 0 % or 100 %)",
    )
