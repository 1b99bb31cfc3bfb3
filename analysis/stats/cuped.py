"""CUPED (regression adjustment on the unit's pre-period value of the same metric).

Deng, Xu, Kohavi & Walker 2013, "Improving the Sensitivity of Online Controlled Experiments
by Utilizing Pre-Experiment Data"; gbstats `compute_theta`, `RegressionAdjustedStatistic`,
`frequentist_variance_relative_cuped` (reference/ab_testing.md F4, F5):
  θ = cov(Y, X) / var(X) on the pooled sample of both arms (0 when either variance is 0)
  adjusted mean  Ȳ − θX̄,   adjusted variance  v_Y + θ²v_X − 2θ·cov(Y, X)
  relative: Δ = (adjB − adjA)/ȲA and the 4-term delta-method variance of F5.
When the pre-period has no variance (e.g. every caller is new) θ = 0, which is the plain test:
the result says so in `note`. A 0/1 metric uses binomial moments throughout (its variance
p(1 − p), the covariate's variance and the covariance all divided by n), so θ is the OLS slope
and v_adj the variance of Y − θX about its mean.

Ratio metrics (gbstats `RegressionAdjustedRatioStatistic`, the 4-vector delta method ∇ᵀΛ∇):
per arm r = M̄/D̄ and its pre-period covariate r_x = M̄x/D̄x, each linearised per unit,
  ψ_r = (M − r·D)/D̄,  ψ_x = (Mx − r_x·Dx)/D̄x,
so with Λ the covariance of (M, D, Mx, Dx), g_r = (1/D̄, −r/D̄, 0, 0), g_x = (0, 0, 1/D̄x,
−r_x/D̄x): v_r = g_rᵀΛg_r, v_x = g_xᵀΛg_x, c = g_rᵀΛg_x. θ minimises the variance of the
difference, θ = (c_A/n_A + c_B/n_B)/(v_x,A/n_A + v_x,B/n_B) (gbstats drops the 1/n weights,
the same θ when the arms are equal); the arm's adjusted ratio is
r − θ·r_x with variance (v_r − 2θc + θ²v_x)/n. Relative: Δ/r_A, whose control term is
(k²v_r − 2kθc + θ²v_x)/(n_A·r_A²) with k = (r_A + Δ)/r_A, the exact gradient of Δ/r_A
(gbstats `frequentist_variance_relative_cuped_ratio`). No pre-period in an arm: the plain ratio.
"""

from __future__ import annotations

import math
from dataclasses import replace

from analysis.stats.effects import estimate_effect, welch_dof
from analysis.stats.results import EffectEstimate
from analysis.stats.statistics import (
    Proportion,
    RegressionAdjusted,
    RegressionAdjustedRatio,
    SampleMean,
)


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
    return joint.covariance / joint.pre_variance


def adjusted_variance(stat: RegressionAdjusted, theta: float) -> float:
    """Per-unit variance of Y − θX."""
    v = stat.post.variance + theta**2 * stat.pre_variance - 2 * theta * stat.covariance
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
        + theta**2 * control.pre_variance
    )
    var = v_b / (n_b * y_a**2) + term_a / (n_a * y_a**2)
    return EffectEstimate(
        True, "", True, y_a, y_b, (adj_b - adj_a) / y_a, math.sqrt(max(var, 0.0)), dof, theta, note
    )


def _ratio_moments(stat: RegressionAdjustedRatio) -> tuple[float, float, float, float, float]:
    """(r, r_x, v_r, v_x, c) per unit for one arm, by the delta method (module docstring)."""
    m, d, mx, dx = (x / stat.n for x in stat.sums)
    r, rx = m / d, mx / dx
    g_r = (1 / d, -r / d, 0.0, 0.0)
    g_x = (0.0, 0.0, 1 / dx, -rx / dx)
    lam = stat.covariance_matrix()

    def quad(u: tuple[float, ...], v: tuple[float, ...]) -> float:
        return sum(u[i] * lam[i][j] * v[j] for i in range(4) for j in range(4))

    return r, rx, quad(g_r, g_r), quad(g_x, g_x), quad(g_r, g_x)


def estimate_cuped_ratio_effect(
    control: RegressionAdjustedRatio, treatment: RegressionAdjustedRatio, relative: bool = False
) -> EffectEstimate:
    """CUPED for a ratio metric with numerator and denominator covariates."""
    for stat, arm in ((control, "control"), (treatment, "treatment")):
        if stat.n < 2:
            return EffectEstimate(False, f"the {arm} arm has fewer than 2 units", relative)
        if not stat.sums[1]:
            return EffectEstimate(False, f"the {arm} arm's denominator sums to zero", relative)
    if not (control.sums[3] and treatment.sums[3]):
        # No pre-period in an arm (every unit new): the covariate is a constant, θ = 0.
        plain = estimate_effect(control.post, treatment.post, relative)
        return replace(plain, theta=0.0, note="CUPED not applied: one arm has no pre-period data")
    r_a, rx_a, v_a, vx_a, c_a = _ratio_moments(control)
    r_b, rx_b, v_b, vx_b, c_b = _ratio_moments(treatment)
    n_a, n_b = control.n, treatment.n
    pooled_vx = vx_a / n_a + vx_b / n_b
    theta = (c_a / n_a + c_b / n_b) / pooled_vx if pooled_vx > 0 else 0.0
    note = "" if theta else "CUPED not applied: the pre-period ratios have no variance"
    adj_v_a = max(v_a - 2 * theta * c_a + theta**2 * vx_a, 0.0)
    adj_v_b = max(v_b - 2 * theta * c_b + theta**2 * vx_b, 0.0)
    if adj_v_a <= 0 or adj_v_b <= 0:
        return EffectEstimate(
            False, "the adjusted metric has zero variance in one arm", relative, r_a, r_b,
            theta=theta,
        )  # fmt: skip
    effect = (r_b - theta * rx_b) - (r_a - theta * rx_a)
    dof = welch_dof(adj_v_a / n_a, n_a, adj_v_b / n_b, n_b)
    if not relative:
        se = math.sqrt(adj_v_a / n_a + adj_v_b / n_b)
        return EffectEstimate(True, "", False, r_a, r_b, effect, se, dof, theta, note)
    if r_a <= 0:
        return EffectEstimate(
            False,
            "relative lift needs a positive control mean"
            f" (control mean is {r_a:.4g}); use the absolute difference",
            True,
            r_a,
            r_b,
            theta=theta,
        )
    # The exact gradient of (adj_B − adj_A)/r_A in the control arm's r: (r_A + Δ)/r_A per unit of
    # r_A's own linearisation (gbstats frequentist_variance_relative_cuped_ratio).
    k = (r_a + effect) / r_a
    term_a = k * k * v_a - 2 * k * theta * c_a + theta**2 * vx_a
    var = adj_v_b / (n_b * r_a**2) + term_a / (n_a * r_a**2)
    return EffectEstimate(
        True, "", True, r_a, r_b, effect / r_a, math.sqrt(max(var, 0.0)), dof, theta, note
    )
