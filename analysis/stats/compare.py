"""One entry point over the three methods, and results over time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from analysis.experiment_rules import METHODS, Alternative, Method
from analysis.stats.bayesian import NormalPrior, bayesian_test
from analysis.stats.frequentist import DEFAULT_SEQUENTIAL_TUNING_N, sequential_test, welch_test
from analysis.stats.results import Comparison, not_computable
from analysis.stats.statistics import Quantile, Statistic, add_statistics


def compare(
    control: Statistic,
    treatment: Statistic,
    method: Method = "fixed",
    relative: bool = False,
    alpha: float = 0.05,
    lower_is_better: bool = False,
    alternative: Alternative = "two-sided",
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    prior: NormalPrior | None = None,
    prior_on_lift: bool = False,
) -> Comparison:
    """Treatment vs control by `method`: "fixed" (Welch t), "sequential" (always-valid) or
    "bayesian" (normal prior; decision threshold 1 − α/2 two-sided, 1 − α one-sided, so it
    agrees with the fixed test of the same `alternative` under a flat prior, as GrowthBook
    PR #7000 proposes). Every method honours `alternative`. `prior_on_lift`: the prior is on
    the relative lift and is rescaled for an absolute comparison (Bayesian only)."""
    if method == "fixed":
        return welch_test(control, treatment, relative, alternative, alpha)
    if method == "sequential":
        return sequential_test(control, treatment, relative, alpha, tuning_n, alternative)
    if method == "bayesian":
        one_sided = alternative in ("greater", "less")
        return bayesian_test(
            control,
            treatment,
            relative,
            prior,
            lower_is_better,
            ci_level=1 - alpha,
            threshold=1 - alpha if one_sided else 1 - alpha / 2,
            alternative=alternative,
            prior_on_lift=prior_on_lift,
        )
    return not_computable(
        f"unknown method {method!r}; use one of {METHODS}", method, relative, alpha
    )


@dataclass(frozen=True)
class DailyResult:
    day: dt.date
    control_units: int
    treatment_units: int
    result: Comparison


def cumulate(
    daily: Sequence[tuple[dt.date, Statistic, Statistic]],
) -> list[tuple[dt.date, Statistic, Statistic]]:
    """Running totals of per-day (not cumulative) statistics; sums are additive.

    Quantiles are not (a day's p95s do not add up to the period's): they give no series.
    """
    if any(isinstance(c, Quantile) or isinstance(t, Quantile) for _, c, t in daily):
        return []
    out: list[tuple[dt.date, Statistic, Statistic]] = []
    for day, c, t in sorted(daily, key=lambda row: row[0]):
        if out:
            c, t = add_statistics(out[-1][1], c), add_statistics(out[-1][2], t)
        out.append((day, c, t))
    return out


def results_over_time(
    cumulative: Sequence[tuple[dt.date, Statistic, Statistic]],
    method: Method = "fixed",
    relative: bool = False,
    alpha: float = 0.05,
    lower_is_better: bool = False,
    tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N,
    prior: NormalPrior | None = None,
    alternative: Alternative = "two-sided",
    prior_on_lift: bool = False,
) -> list[DailyResult]:
    """The cumulative effect and its interval as of each day, from cumulative statistics.

    Only the sequential interval is valid to act on at every day; fixed-horizon intervals
    drawn daily are shown for context (peeking inflates their error rate).
    """
    return [
        DailyResult(
            day,
            _units(c),
            _units(t),
            compare(
                c,
                t,
                method,
                relative,
                alpha,
                lower_is_better,
                alternative,
                tuning_n=tuning_n,
                prior=prior,
                prior_on_lift=prior_on_lift,
            ),
        )
        for day, c, t in sorted(cumulative, key=lambda row: row[0])
    ]


def _units(stat: Statistic) -> int:
    return int(getattr(stat, "n_units", None) or stat.n)
