"""SRM against scipy.stats.chisquare; Holm/BH against statsmodels multipletests."""

import math

import numpy as np
import pytest
from scipy.stats import chisquare
from scipy.stats import t as student_t
from statsmodels.stats.multitest import multipletests

from analysis.stats import (
    Proportion,
    adjust_comparisons,
    benjamini_hochberg,
    holm,
    srm_check,
    welch_test,
)


def test_srm_matches_scipy_chisquare_with_planned_weights():
    observed = {"control": 5120, "a": 4990, "b": 2500}
    weights = {"control": 0.4, "a": 0.4, "b": 0.2}
    r = srm_check(observed, weights)
    total = sum(observed.values())
    ref = chisquare(list(observed.values()), [w * total for w in weights.values()])
    assert r.chi2 == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue)
    assert not r.flagged


def test_srm_flags_a_broken_split_below_one_in_a_thousand():
    r = srm_check({"control": 10_000, "treatment": 10_500})
    assert r.p_value < 0.001 and r.flagged
    assert "mismatch" in r.message


def test_srm_drops_zero_weight_arms_from_the_test():
    r = srm_check({"control": 500, "t": 520, "paused": 3}, {"control": 1, "t": 1, "paused": 0})
    assert r.dof == 1
    assert r.p_value == pytest.approx(chisquare([500, 520]).pvalue)


def test_srm_with_no_traffic_is_not_computable():
    assert not srm_check({"control": 0, "t": 0}).computable
    assert not srm_check({"control": 10}).computable


@pytest.mark.parametrize("method,ours", [("holm", holm), ("fdr_bh", benjamini_hochberg)])
def test_adjusted_p_values_match_statsmodels(method, ours):
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = list(rng.uniform(0, 0.2, rng.integers(1, 12)))
        assert ours(p) == pytest.approx(list(multipletests(p, method=method)[1]))


def test_adjust_comparisons_widens_intervals_and_skips_not_computable():
    results = [
        welch_test(Proportion(4000, 1200), Proportion(4000, 1320)),  # p ≈ 0.003
        welch_test(Proportion(4000, 1200), Proportion(4000, 1230)),  # p ≈ 0.47
        welch_test(Proportion(4000, 0), Proportion(4000, 5)),  # not computable
        welch_test(Proportion(4000, 1200), Proportion(4000, 1280)),  # p ≈ 0.05
    ]
    adjusted = adjust_comparisons(results, "holm")
    raw = [r.p_value for r in results if r.computable]
    expected = multipletests(raw, method="holm")[1]
    assert [r.p_value for r in adjusted if r.computable] == pytest.approx(list(expected))
    assert adjusted[2] == results[2]
    for before, after in zip(results, adjusted, strict=True):
        if before.computable:
            assert after.p_value_unadjusted == before.p_value
            assert after.ci_high - after.ci_low >= before.ci_high - before.ci_low
            # The adjusted interval excludes 0 exactly when the adjusted p is below alpha
            # (up to the t-vs-z difference at this sample size).
            assert (after.ci_low > 0) == after.significant
    assert adjusted[3].p_value > results[3].p_value


def test_adjusted_p_of_one_falls_back_to_the_bonferroni_interval():
    raw = welch_test(Proportion(1000, 300), Proportion(1000, 305))
    r = adjust_comparisons([raw] * 3, "holm")
    assert r[0].p_value == 1.0
    # Bonferroni: the Welch interval at level 1 − α/m (t quantile at its dof), finite and
    # wider than the raw one.
    half = student_t.ppf(1 - 0.05 / 6, raw.dof) * raw.se
    assert (r[0].ci_low, r[0].ci_high) == pytest.approx((raw.effect - half, raw.effect + half))
    assert math.isfinite(r[0].ci_low) and r[0].ci_low < 0 < r[0].ci_high


def test_units_in_an_unplanned_variant_flag_a_mismatch():
    from analysis.stats.srm import srm_check

    result = srm_check(
        {"control": 5000, "treatment": 5010, "treatment-old": 37}, {"control": 1, "treatment": 1}
    )
    assert result.flagged and result.unplanned == {"treatment-old": 37}
    assert result.p_value > 0.5  # the planned arms alone are balanced
    assert "treatment-old (37)" in result.message
