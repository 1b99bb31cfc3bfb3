"""Planning: power, minimum detectable effect, sample size and days needed.

Two-sample z test, normal approximation (GrowthBook `packages/shared/src/power/power.ts`, F11;
the same model as statsmodels NormalIndPower): with δ = baseline·lift and
se = sqrt(v_A/n + v_B/n),
  power = 1 − Φ(c − δ/se) + Φ(−c − δ/se),  c = z_{1−α/2} (two-sided).
For proportions v_A = p(1 − p) and v_B = p'(1 − p') with p' = p(1 + lift).
Sequential power replaces c by the confidence-sequence half-width in standard errors at
N = 2n (see `frequentist.sequential_halfwidth_factor`), as GrowthBook does.
Sample size and MDE invert the power function numerically (it is monotone in n and in δ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.optimize import brentq
from scipy.stats import norm

from analysis.stats.frequentist import sequential_halfwidth_factor


@dataclass(frozen=True)
class PowerPlan:
    computable: bool
    reason: str
    relative_effect: float = math.nan
    power: float = math.nan
    n_per_arm: int = 0
    total_units: int = 0
    days: int = 0
    arms: int = 2


def _critical(alpha: float, n_per_arm: float, sequential_tuning_n: float | None) -> float:
    if sequential_tuning_n:
        return sequential_halfwidth_factor(2 * n_per_arm, alpha, sequential_tuning_n)
    return float(norm.ppf(1 - alpha / 2))


def _treatment_variance(
    baseline_mean: float, baseline_variance: float, lift: float, proportion: bool
) -> float:
    if proportion:
        p = baseline_mean * (1 + lift)
        return p * (1 - p)
    return baseline_variance


def _invalid(baseline_mean: float, baseline_variance: float, alpha: float, proportion: bool) -> str:
    if not (0 < alpha < 1):
        return "alpha must be between 0 and 1"
    if not math.isfinite(baseline_mean) or baseline_mean == 0:
        return "the baseline mean must be a non-zero number"
    if proportion and not 0 < baseline_mean < 1:
        return "a baseline rate must be strictly between 0 and 1"
    if not (math.isfinite(baseline_variance) and baseline_variance > 0):
        return "the baseline variance must be positive"
    return ""


def power(
    baseline_mean: float,
    baseline_variance: float,
    relative_effect: float,
    n_per_arm: float,
    alpha: float = 0.05,
    proportion: bool = False,
    sequential_tuning_n: float | None = None,
) -> float:
    """Probability that a two-sided test at `alpha` detects a true lift of `relative_effect`
    with `n_per_arm` units in each of two arms. NaN when the inputs make no sense."""
    if _invalid(baseline_mean, baseline_variance, alpha, proportion) or n_per_arm <= 0:
        return math.nan
    v_b = _treatment_variance(baseline_mean, baseline_variance, relative_effect, proportion)
    if proportion and not v_b > 0:
        return math.nan
    delta = abs(baseline_mean * relative_effect)
    se = math.sqrt(baseline_variance / n_per_arm + v_b / n_per_arm)
    c = _critical(alpha, n_per_arm, sequential_tuning_n)
    return float(norm.sf(c - delta / se) + norm.cdf(-c - delta / se))


def sample_size_per_arm(
    baseline_mean: float,
    baseline_variance: float,
    relative_effect: float,
    target_power: float = 0.8,
    alpha: float = 0.05,
    proportion: bool = False,
    sequential_tuning_n: float | None = None,
) -> int | None:
    """Smallest n per arm reaching `target_power`; None when no n up to 10⁹ does."""
    if not (0 < target_power < 1) or relative_effect == 0:
        return None

    def gap(n: float) -> float:
        return (
            power(
                baseline_mean,
                baseline_variance,
                relative_effect,
                n,
                alpha,
                proportion,
                sequential_tuning_n,
            )
            - target_power
        )

    hi = 1e9
    if not math.isfinite(gap(hi)) or gap(hi) < 0:
        return None
    lo = 2.0
    if gap(lo) >= 0:
        return 2
    return int(math.ceil(brentq(gap, lo, hi, xtol=1e-6)))


def minimum_detectable_effect(
    baseline_mean: float,
    baseline_variance: float,
    n_per_arm: float,
    target_power: float = 0.8,
    alpha: float = 0.05,
    proportion: bool = False,
    sequential_tuning_n: float | None = None,
) -> float:
    """Smallest positive relative lift detected with `target_power` (NaN if none is)."""
    if not (0 < target_power < 1) or n_per_arm < 2:
        return math.nan
    # For a rate the treatment rate p(1 + lift) must stay below 1.
    hi = (1 / baseline_mean - 1) * (1 - 1e-9) if proportion and 0 < baseline_mean < 1 else 1e6

    def gap(lift: float) -> float:
        return (
            power(
                baseline_mean,
                baseline_variance,
                lift,
                n_per_arm,
                alpha,
                proportion,
                sequential_tuning_n,
            )
            - target_power
        )

    lo = 1e-12
    g_hi = gap(hi)
    if not math.isfinite(g_hi) or g_hi < 0 or not math.isfinite(gap(lo)):
        return math.nan
    return float(brentq(gap, lo, hi, xtol=1e-12))


def days_needed(n_per_arm: int, arms: int, daily_units: float, traffic_share: float = 1.0) -> int:
    """Whole days for `arms` arms of `n_per_arm` at `daily_units` new units a day, of which
    `traffic_share` enter the experiment. 0 when traffic is zero (cannot be reached)."""
    per_day = daily_units * traffic_share
    if per_day <= 0:
        return 0
    return int(math.ceil(n_per_arm * arms / per_day))


def plan_experiment(
    baseline_mean: float,
    baseline_variance: float,
    relative_effect: float,
    daily_units: float,
    arms: int = 2,
    target_power: float = 0.8,
    alpha: float = 0.05,
    traffic_share: float = 1.0,
    proportion: bool = False,
    sequential_tuning_n: float | None = None,
) -> PowerPlan:
    """Sample size and duration to detect `relative_effect` (each treatment vs control)."""
    reason = _invalid(baseline_mean, baseline_variance, alpha, proportion)
    if not reason and arms < 2:
        reason = "an experiment needs at least two arms"
    if not reason and relative_effect == 0:
        reason = "the effect to detect must not be zero"
    if not reason and daily_units * traffic_share <= 0:
        reason = "daily traffic into the experiment must be positive"
    if reason:
        return PowerPlan(False, reason, relative_effect, arms=arms)
    n = sample_size_per_arm(
        baseline_mean,
        baseline_variance,
        relative_effect,
        target_power,
        alpha,
        proportion,
        sequential_tuning_n,
    )
    if n is None:
        return PowerPlan(
            False, "no realistic sample size reaches that power", relative_effect, arms=arms
        )
    achieved = power(
        baseline_mean,
        baseline_variance,
        relative_effect,
        n,
        alpha,
        proportion,
        sequential_tuning_n,
    )
    return PowerPlan(
        True,
        "",
        relative_effect,
        achieved,
        n,
        n * arms,
        days_needed(n, arms, daily_units, traffic_share),
        arms,
    )
