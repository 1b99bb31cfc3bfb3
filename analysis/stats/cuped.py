"""CUPED (regression adjustment on the unit's pre-period value of the same metric).

Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled Experiments
by Utilizing Pre-Experiment Data"; gbstats `compute_theta`, `RegressionAdjustedStatistic`,
`frequentist_variance_relative_cuped` (reference/ab_testing.md F4, F5):
  θ = cov(Y, X) / var(X) on the pooled sample of both arms (0 when either variance is 0)
  adjusted mean  Ȳ − θX̄,   adjusted variance  v_Y + θ²v_X − 2θ·cov(Y, X)
  relative: Δ = (adjB − adjA)/ȲA and the 4-term delta-method variance of F5.
When the pre-period has no variance (e.g. every caller is new) θ = 0, which is the plain test:
the result says so in `note`.
"""

from __future__ import annotations

import math

from analysis.stats.effects import welch_dof
from analysis.stats.results import EffectEstimate
from analysis.stats.statistics import Proportion, RegressionAdjusted, SampleMean


def _pooled(a: SampleMean | Proportion, b: SampleMean | Proportion) -> SampleMean | Proportion:
    if isinstance(a, Proportion) and isinstance(b, Proportion):
        return Proportion(a.n + b.n, a.sum + b.sum)
    return SampleMean(a.n + b.n, a.sum + b.sum, a.sum_squares + b.sum_squares)


def pooled_theta(control: RegressionAdjusted, treatment: RegressionAdjusted) -> float:
    """θ = cov(Y, X)/var(X) over both arms pooled; 0 when var(X) or var(Y) is 0."""
    post = _pooled(control.post, treatment.post)
    pre = _pooled(control.pre, treatment.pre)
    if not (post.variance > 0 and pre.variance > 0):
        return 0.0
    joint = RegressionAdjusted(post, pre, control.cross_sum + treatment.cross_sum)
    return joint.covariance / pre.variance


def adjusted_variance(stat: RegressionAdjusted, theta: float) -> float:
    """Per-unit variance of Y − θX."""
    v = stat.post.variance + theta**2 * stat.pre.variance - 2 * theta * stat.covariance
    return max(v, 0.0)


def adjusted_mean(stat: RegressionAdjusted, theta: float) -> float:
    return stat.post.mean - theta * stat.pre.mean


def estimate_cuped_effect(
    control: RegressionAdjusted, treatment: RegressionAdjusted, relative: bool = False
) -> EffectEstimate:
    theta = pooled_theta(control, treatment)
    note = "" if theta else "CUPED not applied: the pre-period values have no variance"
    n_a, n_b = control.n, treatment.n
    v_a, v_b = adjusted_variance(control, theta), adjusted_variance(treatment, theta)
    if v_a <= 0 or v_b <= 0:
        return EffectEstimate(
            False,
            "the adjusted metric has zero variance in one arm",
            relative,
            control.mean,
            treatment.mean,
            theta=theta,
        )
    adj_a, adj_b = adjusted_mean(control, theta), adjusted_mean(treatment, theta)
    dof = welch_dof(v_a / n_a, n_a, v_b / n_b, n_b)
    y_a, y_b = control.post.mean, treatment.post.mean
    if not relative:
        se = math.sqrt(v_a / n_a + v_b / n_b)
        return EffectEstimate(True, "", False, y_a, y_b, adj_b - adj_a, se, dof, theta, note)
    if y_a <= 0:
        return EffectEstimate(
            False,
            "relative lift needs a positive control mean"
            f" (control mean is {y_a:.4g}); use the absolute difference",
            True,
            y_a,
            y_b,
            theta=theta,
        )
    # F5: gradient of (adjB − adjA)/ȲA, treating X̄B ≈ X̄A.
    term_a = (
        control.post.variance * y_b**2 / y_a**2
        - 2 * theta * control.covariance * y_b / y_a
        + theta**2 * control.pre.variance
    )
    var = v_b / (n_b * y_a**2) + term_a / (n_a * y_a**2)
    return EffectEstimate(
        True, "", True, y_a, y_b, (adj_b - adj_a) / y_a, math.sqrt(max(var, 0.0)), dof, theta, note
    )
