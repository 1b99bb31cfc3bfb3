"""Degenerate inputs: every method returns computable=False with a reason, never raises and
never claims significance."""

import math

import pytest

from analysis.stats import (
    Proportion,
    Quantile,
    Ratio,
    RegressionAdjusted,
    SampleMean,
    compare,
)

OK_MEAN = SampleMean(100, 500.0, 2700.0)
CASES = {
    "zero variance": (SampleMean(50, 100.0, 200.0), SampleMean(50, 100.0, 200.0)),
    "no conversions": (Proportion(1000, 0), Proportion(1000, 12)),
    "all converted": (Proportion(1000, 1000), Proportion(1000, 990)),
    "one unit": (SampleMean(1, 5.0, 25.0), OK_MEAN),
    "empty arm": (OK_MEAN, SampleMean(0, 0.0, 0.0)),
    "zero denominator": (Ratio(10, 0, 0, 0, 0, 0), Ratio(10, 3, 3, 20, 44, 6)),
    "mixed kinds": (OK_MEAN, Proportion(100, 30)),
    "not a number": (SampleMean(100, math.nan, 1.0), OK_MEAN),
    "quantile with no interval": (
        Quantile(3, 0.99, 120.0, math.nan, math.nan),
        Quantile(3, 0.99, 110.0, math.nan, math.nan),
    ),
    "cuped with empty arm": (
        RegressionAdjusted(SampleMean(0, 0, 0), SampleMean(0, 0, 0), 0),
        RegressionAdjusted(OK_MEAN, OK_MEAN, 2700.0),
    ),
}


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_degenerate_inputs_are_not_computable(method, case):
    control, treatment = CASES[case]
    for relative in (False, True):
        r = compare(control, treatment, method=method, relative=relative)
        assert not r.computable
        assert r.reason
        assert not r.significant
        assert math.isnan(r.p_value)


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"])
def test_relative_lift_with_negative_baseline_is_refused_absolute_is_not(method):
    control = SampleMean(200, -100.0, 300.0)  # e.g. a sentiment score averaging −0.5
    treatment = SampleMean(200, -60.0, 250.0)
    rel = compare(control, treatment, method=method, relative=True)
    assert not rel.computable and "positive control mean" in rel.reason
    assert compare(control, treatment, method=method).computable


def test_bad_settings_are_not_computable():
    assert not compare(OK_MEAN, OK_MEAN, method="magic").computable
    assert not compare(OK_MEAN, OK_MEAN, alpha=1.5).computable
    assert not compare(OK_MEAN, OK_MEAN, alternative="sideways").computable
