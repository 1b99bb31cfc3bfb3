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
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import fisher_exact, norm
from scipy.stats import t as student_t

from analysis.stats.effects import estimate_effect
from analysis.stats.results import Comparison, EffectEstimate, not_computable
from analysis.stats.statistics import Proportion, Quantile, Statistic

ALTERNATIVES = ("two-sided", "greater", "less")
DEFAULT_SEQUENTIAL_TUNING_N = 5000


def _not_computable_from(est: EffectEstimate, method: str, alpha: float, alt: str) -> Comparison:
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
    alternative: str = "two-sided",
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
    est: EffectEstimate, alternative: str = "two-sided", alpha: float = 0.05, null: float = 0.0
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
    )


def sequential_rho(alpha: float, tuning_n: float) -> float:
    """Mixture width ρ that makes the confidence sequence tightest at N = tuning_n."""
    return math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n)


def sequential_halfwidth_factor(n_total: float, alpha: float, tuning_n: float) -> float:
    """Half-width of the confidence sequence in standard errors (replaces z_{1−α/2})."""
    rho = sequential_rho(alpha, tuning_n)
    v = n_total * rho**2
    return math.sqrt(2 * (v + 1) * math.log(math.sqrt(v + 1) / alpha) / v)


def sequential_test(
    control: Statistic,
    treatment: Statistic,
    relative: bool = False,
    alpha: float = 0.05,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
) -> Comparison:
    """Two-sided always-valid interval and p-value (safe to look at every day)."""
    reason = _check_alpha(alpha) or ("" if tuning_n > 0 else "tuning_n must be positive")
    if reason:
        return not_computable(reason, "sequential", relative, alpha)
    est = estimate_effect(control, treatment, relative)
    if not est.computable:
        return _not_computable_from(est, "sequential", alpha, "two-sided")
    n_total = _units(control) + _units(treatment)
    return sequential_from_estimate(est, n_total, alpha, tuning_n)


def sequential_from_estimate(
    est: EffectEstimate, n_total: int, alpha: float = 0.05, tuning_n: float = 5000
) -> Comparison:
    rho = sequential_rho(alpha, tuning_n)
    v = n_total * rho**2
    half = est.se * sequential_halfwidth_factor(n_total, alpha, tuning_n)
    log_e = rho**2 * est.effect**2 * n_total / (2 * est.se**2 * (v + 1)) - 0.5 * math.log(v + 1)
    p = 1.0 if log_e <= 0 else min(1.0, math.exp(-log_e))
    return Comparison(
        True,
        "",
        "sequential",
        est.relative,
        alpha,
        "two-sided",
        est.control_mean,
        est.treatment_mean,
        est.effect,
        est.se,
        est.effect - half,
        est.effect + half,
        p,
        est.dof,
        significant=p < alpha,
        theta=est.theta,
        note=est.note,
    )


def _units(stat: Statistic) -> int:
    if isinstance(stat, Quantile):
        return stat.units
    return stat.n


def wilson_interval(successes, n, alpha: float = 0.05):
    """Wilson score interval for a proportion (Wilson 1927), elementwise over arrays:
    centre (p + z²/2n)/(1 + z²/n), half-width z·sqrt(p(1−p)/n + z²/4n²)/(1 + z²/n)."""
    z = float(norm.ppf(1 - alpha / 2))
    n = np.asarray(n, dtype=float)
    p = np.asarray(successes, dtype=float) / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def exact_two_proportions(control: Proportion, treatment: Proportion, alpha: float = 0.05):
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
        note="Fisher's exact test and Newcombe's score interval (an arm at 0 % or 100 %)",
    )
