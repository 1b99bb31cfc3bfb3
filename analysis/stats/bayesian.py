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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import norm

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
    return mu * norm.cdf(z) + sigma * norm.pdf(z)


def bayesian_test(
    control: Statistic,
    treatment: Statistic,
    relative: bool = False,
    prior: NormalPrior | None = None,
    lower_is_better: bool = False,
    ci_level: float = 0.95,
    threshold: float = 0.95,
) -> Comparison:
    """Posterior of the effect: chance to beat control, risks and a credible interval.

    `significant` is True when the chance to beat control is ≥ threshold or ≤ 1 − threshold.
    """
    prior = prior or NormalPrior()
    alpha = 1 - ci_level
    if not (0 < ci_level < 1 and 0.5 < threshold < 1):
        return not_computable(
            "ci_level must be in (0, 1) and threshold in (0.5, 1)", "bayesian", relative, alpha
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
    if prior.proper:
        precision = data_precision + 1 / prior.variance
        mean = (est.effect * data_precision + prior.mean / prior.variance) / precision
    else:
        precision, mean = data_precision, est.effect
    sd = math.sqrt(1 / precision)
    # "Improvement" is the effect in the direction that is good for the metric.
    sign = -1.0 if lower_is_better else 1.0
    ctw = float(norm.sf(0, loc=sign * mean, scale=sd))
    risk_control = expected_positive_part(sign * mean, sd)
    risk_treatment = expected_positive_part(-sign * mean, sd)
    z = norm.ppf(0.5 + ci_level / 2)
    return Comparison(
        True,
        "",
        "bayesian",
        relative,
        alpha,
        "two-sided",
        est.control_mean,
        est.treatment_mean,
        mean,
        sd,
        mean - z * sd,
        mean + z * sd,
        significant=ctw >= threshold or ctw <= 1 - threshold,
        chance_to_beat_control=ctw,
        risk_control=float(risk_control),
        risk_treatment=float(risk_treatment),
        dof=est.dof,
        theta=est.theta,
        note=est.note,
    )
