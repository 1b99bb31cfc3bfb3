"""Bayesian test on the effect with a normal prior (gbstats `bayesian/tests.py::
EffectBayesianABTest`, reference/ab_testing.md F7).

Likelihood: the estimated effect Δ̂ ~ N(Δ, se²) (same moments as the frequentist tests, CUPED
included). Prior: flat (improper, the default: posterior = N(Δ̂, se²)) or N(μ0, σ0²) on the
effect's own scale (the lift when relative=True). Normal–normal update:
  precision = 1/se² + 1/σ0²,  mean = (Δ̂/se² + μ0/σ0²)/precision.
Chance to beat control = P(Δ > 0) (P(Δ < 0) when lower is better). Risk (expected loss) is the
mean of a truncated normal: E[max(X, 0)] = μΦ(μ/σ) + σφ(μ/σ) for X ~ N(μ, σ²);
risk of shipping treatment = E[max(−improvement, 0)], of keeping control = E[max(improvement, 0)].
The credible interval is the equal-tailed posterior interval at `ci_level` (95 % by default,
not tied to the decision threshold; GrowthBook PR #7033).
A prior set on the lift (`prior_on_lift`) reaches an absolute comparison too, rescaled by the
control mean as gbstats does (mean μ0·|ȳA|, variance σ0²·ȳA²), so the verdict, which reads
the absolute comparison, is the prior's.
`alternative`: "greater" asks only whether Δ > 0 (significant when P(Δ > 0) ≥ threshold, the
interval a lower credible bound), "less" mirrors it; "two-sided" accepts either direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

from analysis.experiment_rules import Alternative
from analysis.stats.effects import estimate_effect
from analysis.stats.results import Comparison, not_computable
from analysis.stats.statistics import Statistic


@dataclass(frozen=True)
class NormalPrior:
    """Prior on the effect. proper=False is the flat prior (mean/variance ignored)."""

    mean: float = 0.0
    variance: float = 0.09  # sd 0.3 on the lift, gbstats' default proper prior
    proper: bool = False


def expected_positive_part(mu: float, sigma: float) -> float:
    """E[max(X, 0)] for X ~ N(mu, sigma²)."""
    if sigma <= 0:
        return max(mu, 0.0)
    z = mu / sigma
    return float(mu * norm.cdf(z) + sigma * norm.pdf(z))


def bayesian_test(
    control: Statistic,
    treatment: Statistic,
    relative: bool = False,
    prior: NormalPrior | None = None,
    lower_is_better: bool = False,
    ci_level: float = 0.95,
    threshold: float = 0.95,
    alternative: Alternative = "two-sided",
    prior_on_lift: bool = False,
) -> Comparison:
    """Posterior of the effect: chance to beat control, risks and a credible interval.

    Two-sided, `significant` is True when the chance to beat control is ≥ threshold or
    ≤ 1 − threshold; one-sided, when P(Δ > 0) (or P(Δ < 0) for "less") is ≥ threshold.
    """
    prior = prior or NormalPrior()
    alpha = 1 - ci_level
    if not (0 < ci_level < 1 and 0.5 < threshold < 1):
        return not_computable(
            "ci_level must be in (0, 1) and threshold in (0.5, 1)", "bayesian", relative, alpha
        )
    if alternative not in ("two-sided", "greater", "less"):
        return not_computable(
            "alternative must be one of ('two-sided', 'greater', 'less')",
            "bayesian",
            relative,
            alpha,
            alternative=alternative,
        )
    if prior.proper and not prior.variance > 0:
        return not_computable(
            "a proper prior needs a positive variance", "bayesian", relative, alpha
        )
    est = estimate_effect(control, treatment, relative)
    if not est.computable:
        return not_computable(
            est.reason,
            "bayesian",
            relative,
            alpha,
            control_mean=est.control_mean,
            treatment_mean=est.treatment_mean,
        )
    data_precision = 1 / est.se**2
    prior_mean, prior_variance = prior.mean, prior.variance
    if prior.proper and prior_on_lift and not relative:
        # the lift's prior on the metric's own scale (gbstats rescales the same way)
        prior_mean *= abs(est.control_mean)
        prior_variance *= est.control_mean**2
    if prior.proper and not prior_variance > 0:
        return not_computable(
            "a prior on the lift needs a non-zero control mean", "bayesian", relative, alpha
        )
    if prior.proper:
        precision = data_precision + 1 / prior_variance
        mean = (est.effect * data_precision + prior_mean / prior_variance) / precision
    else:
        precision, mean = data_precision, est.effect
    sd = math.sqrt(1 / precision)
    # "Improvement" is the effect in the direction that is good for the metric.
    sign = -1.0 if lower_is_better else 1.0
    ctw = float(norm.sf(0, loc=sign * mean, scale=sd))
    risk_control = expected_positive_part(sign * mean, sd)
    risk_treatment = expected_positive_part(-sign * mean, sd)
    if alternative == "two-sided":
        z = float(norm.ppf(0.5 + ci_level / 2))
        lo, hi = mean - z * sd, mean + z * sd
        significant = ctw >= threshold or ctw <= 1 - threshold
    else:
        z = float(norm.ppf(ci_level))
        p_greater = float(norm.sf(0, loc=mean, scale=sd))
        if alternative == "greater":
            lo, hi, significant = mean - z * sd, math.inf, p_greater >= threshold
        else:
            lo, hi, significant = -math.inf, mean + z * sd, 1 - p_greater >= threshold
    return Comparison(
        True,
        "",
        "bayesian",
        relative,
        alpha,
        alternative,
        est.control_mean,
        est.treatment_mean,
        mean,
        sd,
        lo,
        hi,
        significant=significant,
        chance_to_beat_control=ctw,
        risk_control=float(risk_control),
        risk_treatment=float(risk_treatment),
        dof=est.dof,
        theta=est.theta,
        note=est.note,
        interval_alpha=alpha,
    )
