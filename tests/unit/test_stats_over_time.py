"""Cumulative results per day from per-day statistics."""

import datetime as dt

import numpy as np
import pytest

from analysis.stats import Proportion, cumulate, results_over_time, welch_test


def test_cumulative_series_ends_at_the_full_experiment_result():
    rng = np.random.default_rng(8)
    start = dt.date(2026, 3, 1)
    daily = []
    for d in range(10):
        conv_a, conv_b = rng.binomial(500, 0.60), rng.binomial(500, 0.64)
        daily.append(
            (start + dt.timedelta(days=d), Proportion(500, conv_a), Proportion(500, conv_b))
        )
    series = results_over_time(cumulate(daily), method="sequential")
    assert [p.day for p in series] == [row[0] for row in daily]
    assert [p.control_units for p in series] == [500 * (d + 1) for d in range(10)]
    total_a = Proportion(5000, sum(row[1].sum for row in daily))
    total_b = Proportion(5000, sum(row[2].sum for row in daily))
    assert series[-1].result.effect == pytest.approx(total_b.mean - total_a.mean)
    # Intervals narrow as data accumulates.
    widths = [p.result.ci_high - p.result.ci_low for p in series]
    assert widths[-1] < widths[0]
    assert series[-1].result.ci_high - series[-1].result.ci_low > (lambda r: r.ci_high - r.ci_low)(
        welch_test(total_a, total_b)
    )


def test_days_without_data_are_not_computable_rather_than_errors():
    day = dt.date(2026, 3, 1)
    series = results_over_time([(day, Proportion(0, 0), Proportion(0, 0))])
    assert not series[0].result.computable


def test_quantiles_give_no_cumulative_series_instead_of_an_error():
    import datetime as dt

    from analysis.stats.compare import cumulate
    from analysis.stats.statistics import quantile_from_values

    q = quantile_from_values([1.0, 2.0, 3.0, 4.0, 5.0] * 20, 0.5)
    assert cumulate([(dt.date(2026, 1, 1), q, q), (dt.date(2026, 1, 2), q, q)]) == []
