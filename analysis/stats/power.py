"""Planning: power, minimum detectable effect, sample size and days needed, before an
experiment (`plan_experiment`) and while it runs (`mid_experiment_power`).

What is planned for. The effect to detect is always given as a relative lift (5 % = 0.05 of
the baseline), but two tests can be planned for it:
  scale="absolute" (the default; the evaluation's verdict reads the absolute difference):
    the two-sample test of Δ = μB − μA with δ = baseline·lift and
    se = sqrt(v_A/n + v_B/n) (the same model as statsmodels NormalIndPower);
  scale="relative" (GrowthBook `packages/shared/src/power/power.ts`, F11): the test of the
    lift itself, δ = lift, with the delta-method variance of (μB − μA)/μA,
    se² = (v_B/μA² + v_A·μB²/μA⁴)/n,  μB = μA(1 + lift).
  power = 1 − Φ(c − δ/se) + Φ(−c − δ/se),  c = z_{1−α'/2} (two-sided),
For proportions v_A = p(1 − p) and v_B = p'(1 − p') with p' = p(1 + lift).
The correction the evaluation applies is planned for too: with `comparisons` = m (metrics ×
treatment arms), α' = α/m, the per-comparison level of the Bonferroni intervals a Holm
evaluation shows (and at least as strict as BH needs), so the planned power is not optimistic.
Sequential power replaces c by the confidence-sequence half-width in standard errors at
N = 2n and α' (see `frequentist.sequential_halfwidth_factor`), as GrowthBook does.
Sample size and MDE invert the power function numerically (it is monotone in n and in δ).

Mid-experiment power (gbstats `power/midexperimentpower.py`): with the standard error se of
the effect observed so far over N units, adding k·N units in the same proportions gives
se_k² = se²/(1 + k); the power against the target effect after them is the formula above
with se_k (and, sequentially, c at N(1 + k)); the units still needed solve power(k) = target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from scipy.optimize import brentq
from scipy.stats import norm

from analysis.stats.effects import estimate_effect
from analysis.stats.frequentist import sequential_halfwidth_factor
from analysis.stats.statistics import Statistic

SCALES = ("absolute", "relative")


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
    scale: str = "absolute"  # which test was planned: see the module docstring
    comparisons: int = 1  # metrics × treatment arms the evaluation corrects over
    alpha_per_comparison: float = math.nan

    @property
    def description(self) -> str:
        """One sentence on what this plan assumes."""
        what = (
            "the absolute difference (treatment − control)"
            if self.scale == "absolute"
            else "the relative lift ((treatment − control)/control)"
        )
        text = f"Planned for a two-sided test of {what}"
        if self.comparisons > 1:
            text += (
                f", corrected for {self.comparisons} comparisons "
                f"(each at α = {self.alpha_per_comparison:.3g})"
            )
        return text + "."


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
    *,
    scale: str = "absolute",
    comparisons: int = 1,
) -> float:
    """Probability that a two-sided test at `alpha` (divided over `comparisons`) detects a
    true lift of `relative_effect` with `n_per_arm` units in each of two arms, testing the
    absolute difference or the relative lift (`scale`). NaN when the inputs make no sense."""
    if _invalid(baseline_mean, baseline_variance, alpha, proportion) or n_per_arm <= 0:
        return math.nan
    if scale not in SCALES or comparisons < 1:
        return math.nan
    v_b = _treatment_variance(baseline_mean, baseline_variance, relative_effect, proportion)
    if proportion and not v_b > 0:
        return math.nan
    if scale == "absolute":
        delta = abs(baseline_mean * relative_effect)
        se = math.sqrt(baseline_variance / n_per_arm + v_b / n_per_arm)
    else:
        mu_a, mu_b = baseline_mean, baseline_mean * (1 + relative_effect)
        delta = abs(relative_effect)
        se = math.sqrt((v_b / mu_a**2 + baseline_variance * mu_b**2 / mu_a**4) / n_per_arm)
    c = _critical(alpha / comparisons, n_per_arm, sequential_tuning_n)
    return float(norm.sf(c - delta / se) + norm.cdf(-c - delta / se))


def sample_size_per_arm(
    baseline_mean: float,
    baseline_variance: float,
    relative_effect: float,
    target_power: float = 0.8,
    alpha: float = 0.05,
    proportion: bool = False,
    sequential_tuning_n: float | None = None,
    *,
    scale: str = "absolute",
    comparisons: int = 1,
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
                scale=scale,
                comparisons=comparisons,
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
    *,
    scale: str = "absolute",
    comparisons: int = 1,
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
                scale=scale,
                comparisons=comparisons,
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
    *,
    scale: str = "absolute",
    comparisons: int = 1,
) -> PowerPlan:
    """Sample size and duration to detect `relative_effect` (each treatment vs control), for
    the test `scale` names, at α/`comparisons` (the evaluation's correction)."""
    reason = _invalid(baseline_mean, baseline_variance, alpha, proportion)
    if not reason and scale not in SCALES:
        reason = f"scale must be one of {', '.join(SCALES)}"
    if not reason and comparisons < 1:
        reason = "the number of comparisons must be at least 1"
    if not reason and arms < 2:
        reason = "an experiment needs at least two arms"
    if not reason and relative_effect == 0:
        reason = "the effect to detect must not be zero"
    if not reason and daily_units * traffic_share <= 0:
        reason = "daily traffic into the experiment must be positive"
    refused = PowerPlan(
        False,
        reason,
        relative_effect,
        arms=arms,
        scale=scale,
        comparisons=comparisons,
        alpha_per_comparison=alpha / max(comparisons, 1),
    )
    if reason:
        return refused
    n = sample_size_per_arm(
        baseline_mean,
        baseline_variance,
        relative_effect,
        target_power,
        alpha,
        proportion,
        sequential_tuning_n,
        scale=scale,
        comparisons=comparisons,
    )
    if n is None:
        return replace(refused, reason="no realistic sample size reaches that power")
    achieved = power(
        baseline_mean,
        baseline_variance,
        relative_effect,
        n,
        alpha,
        proportion,
        sequential_tuning_n,
        scale=scale,
        comparisons=comparisons,
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
        scale,
        comparisons,
        alpha / comparisons,
    )


@dataclass(frozen=True)
class MidExperimentPower:
    """Power reached so far against a target effect, and what more it needs."""

    computable: bool
    reason: str
    relative_effect: float = math.nan
    power_now: float = math.nan
    target_power: float = 0.8
    units_so_far: int = 0  # in the two compared arms
    more_units: int | None = None  # None: no realistic number reaches the target
    more_days: int | None = None  # None: unknown (no traffic) or unreachable
    scale: str = "absolute"
    comparisons: int = 1

    @property
    def sentence(self) -> str:
        if not self.computable:
            return f"Power so far not computable: {self.reason}."
        lift = f"{self.relative_effect * 100:g} %"
        now = f"Power so far to detect a {lift} change: {self.power_now * 100:.0f} %"
        if self.more_units == 0:
            return now + f", at or above the {self.target_power * 100:.0f} % target."
        if self.more_units is None:
            return now + "; no realistic number of further units reaches the target."
        days = (
            f" (about {self.more_days:,} more days at current traffic)"
            if self.more_days is not None
            else ""
        )
        return (
            now + f"; {self.more_units:,} more units{days} reach {self.target_power * 100:.0f} %."
        )


def mid_experiment_power(
    control: Statistic,
    treatment: Statistic,
    relative_effect: float,
    target_power: float = 0.8,
    alpha: float = 0.05,
    *,
    scale: str = "absolute",
    comparisons: int = 1,
    sequential_tuning_n: float | None = None,
    daily_units: float = 0.0,
) -> MidExperimentPower:
    """Power so far to detect `relative_effect` from the observed standard error, and the
    further units (over the two arms, in their current proportions) and days at
    `daily_units` new units a day in these arms that reach `target_power`."""
    out = MidExperimentPower(
        False,
        "",
        relative_effect=relative_effect,
        target_power=target_power,
        scale=scale,
        comparisons=comparisons,
    )
    if scale not in SCALES or comparisons < 1 or not 0 < alpha < 1:
        return replace(out, reason="invalid scale, comparisons or alpha")
    if not 0 < target_power < 1 or relative_effect == 0:
        return replace(out, reason="the target power must be in (0, 1) and the effect non-zero")
    est = estimate_effect(control, treatment, relative=scale == "relative")
    if not est.computable:
        return replace(out, reason=est.reason)
    n_now = int(control.n + treatment.n)
    delta = abs(relative_effect) * (1.0 if scale == "relative" else abs(est.control_mean))
    a = alpha / comparisons

    def power_after(k: float) -> float:
        se = est.se / math.sqrt(1 + k)
        if sequential_tuning_n:
            c = sequential_halfwidth_factor(n_now * (1 + k), a, sequential_tuning_n)
        else:
            c = float(norm.ppf(1 - a / 2))
        return float(norm.sf(c - delta / se) + norm.cdf(-c - delta / se))

    now = power_after(0.0)
    out = replace(out, computable=True, power_now=now, units_so_far=n_now)
    if now >= target_power:
        return replace(out, more_units=0, more_days=0)
    k_max = 1e9 / max(n_now, 1)
    if power_after(k_max) < target_power:
        return out  # more_units None: unreachable
    k = float(brentq(lambda k: power_after(k) - target_power, 0.0, k_max, xtol=1e-9))
    more = int(math.ceil(k * n_now))
    days = int(math.ceil(more / daily_units)) if daily_units > 0 else None
    return replace(out, more_units=more, more_days=days)
