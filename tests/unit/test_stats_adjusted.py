"""Issue 17: intervals that are what the page says they are (adjusted sequential and Welch
intervals, one-sided sequential tests, a prior that reaches the verdict, inconsistent sums
refused), each against an independent computation: the confidence sequence by hand,
statsmodels' multipletests, scipy's t quantiles, numerical integration, the closed-form
normal-normal update, and a seeded coverage simulation under daily peeking."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.stats import norm
from scipy.stats import t as student_t
from statsmodels.stats.multitest import multipletests

from analysis.stats import (
    NormalPrior,
    Proportion,
    Ratio,
    RegressionAdjusted,
    SampleMean,
    adjust_comparisons,
    compare,
    sequential_test,
    welch_test,
)
from analysis.stats.corrections import interval_statement


def mean_stat(values: np.ndarray) -> SampleMean:
    return SampleMean(len(values), float(values.sum()), float((values**2).sum()))


def cs_halfwidth_by_hand(se: float, n_total: int, alpha: float, tuning_n: float) -> float:
    # Waudby-Smith et al. 2023 asymptotic confidence sequence (gbstats F6), written out here.
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n
    v = n_total * rho2
    return se * math.sqrt(2 * (v + 1) * math.log(math.sqrt(v + 1) / alpha) / v)


def six_sequential_results() -> list:
    rng = np.random.default_rng(17)
    out = []
    for shift in (0.0, 0.05, 0.1, 0.15, 0.25, 0.35):
        a, b = rng.normal(10, 2, 2500), rng.normal(10 + shift, 2, 2500)
        out.append(sequential_test(mean_stat(a), mean_stat(b)))
    return out


def test_holm_adjusted_sequential_interval_is_the_confidence_sequence_at_alpha_over_m():
    raw = six_sequential_results()
    adjusted = adjust_comparisons(raw, "holm")
    expected_p = multipletests([r.p_value for r in raw], method="holm")[1]
    assert [r.p_value for r in adjusted] == pytest.approx(list(expected_p))
    for before, after in zip(raw, adjusted, strict=True):
        half = cs_halfwidth_by_hand(before.se, 5000, 0.05 / 6, 5000)
        assert (after.ci_high - after.ci_low) / 2 == pytest.approx(half, rel=1e-12)
        assert after.ci_low == pytest.approx(before.effect - half)
        # Wider than the unadjusted sequence: the page's "adjusted" is true.
        assert after.ci_high - after.ci_low > before.ci_high - before.ci_low
        assert after.level == pytest.approx(1 - 0.05 / 6)


def test_bh_intervals_are_false_coverage_rate_intervals_that_match_the_discoveries():
    raw = six_sequential_results()
    adjusted = adjust_comparisons(raw, "bh")
    rejected, p_adj, *_ = multipletests([r.p_value for r in raw], alpha=0.05, method="fdr_bh")
    assert [r.p_value for r in adjusted] == pytest.approx(list(p_adj))
    discoveries = int(rejected.sum())
    assert 0 < discoveries < 6  # the case exercises both sides
    level = 0.05 * discoveries / 6  # Benjamini & Yekutieli 2005
    for before, after, found in zip(raw, adjusted, rejected, strict=True):
        half = cs_halfwidth_by_hand(before.se, 5000, level, 5000)
        assert (after.ci_high - after.ci_low) / 2 == pytest.approx(half, rel=1e-12)
        assert (after.ci_low > 0 or after.ci_high < 0) == bool(found) == after.significant


def test_small_dof_welch_adjusted_interval_uses_t_quantiles():
    rng = np.random.default_rng(3)
    raw = [
        welch_test(mean_stat(rng.normal(5, 1, 6)), mean_stat(rng.normal(5 + d, 3, 5)))
        for d in (0.0, 1.0, 4.0)
    ]
    adjusted = adjust_comparisons(raw, "holm")
    for before, after in zip(raw, adjusted, strict=True):
        assert before.dof < 10
        t_half = student_t.ppf(1 - 0.05 / 6, before.dof) * before.se
        assert after.ci_high - before.effect == pytest.approx(t_half, rel=1e-12)
        # z would be far too narrow at this dof
        assert t_half > 1.2 * norm.ppf(1 - 0.05 / 6) * before.se


def test_one_sided_welch_adjusted_bound():
    rng = np.random.default_rng(4)
    raw = [
        welch_test(
            mean_stat(rng.normal(0, 1, 40)), mean_stat(rng.normal(d, 1, 40)), alternative="greater"
        )
        for d in (0.2, 0.6)
    ]
    adjusted = adjust_comparisons(raw, "holm")
    for before, after in zip(raw, adjusted, strict=True):
        assert after.ci_high == math.inf
        bound = student_t.ppf(1 - 0.05 / 2, before.dof) * before.se
        assert before.effect - after.ci_low == pytest.approx(bound, rel=1e-12)


def test_interval_statement_says_level_and_correction_once():
    adjusted = adjust_comparisons(six_sequential_results(), "holm")
    text = interval_statement(adjusted)
    assert "6 comparisons" in text and "Holm" in text and "99.17 %" in text and "95 %" in text
    plain = interval_statement(six_sequential_results())
    assert "not adjusted" in plain and "95 %" in plain


# ---------------------------------------------------------------- one-sided sequential


def one_sided_mixture_by_quadrature(z: float, v: float) -> float:
    """E⁺ = 2∫₀^∞ exp(λS − λ²V/2) N(λ; 0, 1/ρ) dλ with S = z·sqrt(V), v = V/ρ (V = 1 here)."""
    rho = 1 / v
    integrand = lambda lam: math.exp(lam * z - lam * lam / 2) * norm.pdf(lam, scale=rho**-0.5)  # noqa: E731
    return 2 * quad(integrand, 0, np.inf)[0]


def test_one_sided_sequential_bound_solves_the_half_normal_mixture():
    a = mean_stat(np.random.default_rng(5).normal(10, 2, 3000))
    b = mean_stat(np.random.default_rng(6).normal(10.1, 2, 3000))
    two = sequential_test(a, b)
    greater = sequential_test(a, b, alternative="greater")
    less = sequential_test(a, b, alternative="less")
    assert greater.alternative == "greater" and greater.ci_high == math.inf
    assert less.ci_low == -math.inf
    c = (greater.effect - greater.ci_low) / greater.se
    rho2 = (-2 * math.log(0.05) + math.log(-2 * math.log(0.05) + 1)) / 5000
    v = 6000 * rho2
    assert one_sided_mixture_by_quadrature(c, v) == pytest.approx(1 / 0.05, rel=1e-6)
    # narrower than the two-sided sequence, wider than the fixed one-sided bound
    assert norm.ppf(0.95) < c < (two.ci_high - two.effect) / two.se
    z = greater.effect / greater.se
    assert greater.p_value == pytest.approx(min(1, 1 / one_sided_mixture_by_quadrature(z, v)))
    assert less.p_value == 1.0 and not less.significant


def test_alternative_is_never_dropped():
    a, b = Proportion(4000, 1200), Proportion(4000, 1400)
    for method in ("fixed", "sequential", "bayesian"):
        r = compare(a, b, method, alternative="less")
        assert r.alternative == "less" and r.ci_low == -math.inf and not r.significant
        g = compare(a, b, method, alternative="greater")
        assert g.alternative == "greater" and g.ci_high == math.inf and g.significant
        bad = compare(a, b, method, alternative="sideways")
        assert not bad.computable and "alternative" in bad.reason


# ---------------------------------------------------------------- Bayesian prior


def test_prior_on_the_lift_reaches_the_absolute_verdict_by_the_closed_form():
    control, treatment = Proportion(2000, 600), Proportion(2000, 660)
    prior = NormalPrior(mean=0.0, variance=0.01**2, proper=True)  # sceptical: sd 1 % lift
    flat = compare(control, treatment, "bayesian")
    r = compare(control, treatment, "bayesian", prior=prior, prior_on_lift=True)
    # Closed form: data Δ̂ ~ N(Δ, se²), prior N(0·|p_A|, (0.01·p_A)²).
    p_a, p_b = 0.3, 0.33
    d, se2 = p_b - p_a, p_a * (1 - p_a) / 2000 + p_b * (1 - p_b) / 2000
    tau2 = (0.01 * p_a) ** 2
    post_var = 1 / (1 / se2 + 1 / tau2)
    post_mean = post_var * (d / se2)
    assert r.effect == pytest.approx(post_mean, rel=1e-12)
    assert r.se == pytest.approx(math.sqrt(post_var), rel=1e-12)
    assert r.chance_to_beat_control == pytest.approx(norm.cdf(post_mean / math.sqrt(post_var)))
    assert flat.significant and not r.significant  # the prior changes the decision


def test_bayesian_one_sided_threshold_is_one_minus_alpha():
    control, treatment = Proportion(3000, 900), Proportion(3000, 964)
    r = compare(control, treatment, "bayesian", alternative="greater")
    d = 964 / 3000 - 0.3
    se = math.sqrt(0.3 * 0.7 / 3000 + (964 / 3000) * (1 - 964 / 3000) / 3000)
    p_greater = norm.cdf(d / se)
    assert 0.95 < p_greater < 0.975  # between the one- and two-sided thresholds
    assert r.significant and not compare(control, treatment, "bayesian").significant
    assert r.ci_low == pytest.approx(d - norm.ppf(0.95) * se)


# ---------------------------------------------------------------- inconsistent input


@pytest.mark.parametrize(
    "stat",
    [
        SampleMean(100, 500.0, 2000.0),  # Σx² = 2000 < (Σx)²/n = 2500
        Ratio(100, 50.0, 10.0, 100.0, 200.0, 60.0),  # numerator Σm² below Σm²/n
        RegressionAdjusted(SampleMean(100, 50.0, 60.0), SampleMean(100, 30.0, 1.0), 20.0),
        Proportion(100, 130),
    ],
)
def test_inconsistent_sufficient_statistics_are_refused_by_name(stat):
    good = {
        SampleMean: SampleMean(100, 500.0, 3000.0),
        Ratio: Ratio(100, 50.0, 60.0, 100.0, 200.0, 60.0),
        RegressionAdjusted: RegressionAdjusted(
            SampleMean(100, 50.0, 60.0), SampleMean(100, 30.0, 20.0), 20.0
        ),
        Proportion: Proportion(100, 30),
    }[type(stat)]
    for method in ("fixed", "sequential", "bayesian"):
        r = compare(good, stat, method)
        assert not r.computable
        assert r.reason.startswith("inconsistent input in the treatment arm")
        assert "same value" not in r.reason


def test_rounding_in_the_sums_is_not_inconsistent():
    # Every unit 0.1: Σx² and (Σx)²/n agree up to floating-point rounding only.
    x = np.full(1_000_000, 0.1)
    stat = SampleMean(x.size, float(x.sum()), float((x * x).sum()))
    r = welch_test(stat, SampleMean(4, 2.0, 1.5))
    assert not r.computable and "same value" in r.reason


# ---------------------------------------------------------------- coverage under peeking


def test_adjusted_sequential_intervals_cover_across_metrics_under_daily_peeking():
    """8 metrics, 2 arms, 300 units a day per arm, looked at every day for 14 days, 300
    seeded repetitions: the Holm-adjusted confidence sequences miss any true effect on any
    day in at most 5 % of repetitions (their stated simultaneous level; 0.3 % here), while
    the unadjusted sequences, which the page used to call adjusted, miss in more than 5 %
    (9.3 % here)."""
    rng = np.random.default_rng(2026)
    reps, days, per_day, m = 300, 14, 300, 8
    true = np.array([0.0, 0.0, 0.1, -0.2, 0.0, 0.05, 0.0, 0.3])
    sd = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 0.5, 2.0, 1.0])
    miss_adjusted = miss_raw = 0
    for _ in range(reps):
        a = rng.normal(0.0, sd[:, None, None], (m, days, per_day))
        b = rng.normal(true[:, None, None], sd[:, None, None], (m, days, per_day))
        sa, sb = a.sum(axis=2).cumsum(axis=1), b.sum(axis=2).cumsum(axis=1)
        qa, qb = (a * a).sum(axis=2).cumsum(axis=1), (b * b).sum(axis=2).cumsum(axis=1)
        any_adjusted = any_raw = False
        for day in range(days):
            n = per_day * (day + 1)
            raw = [
                sequential_test(
                    SampleMean(n, sa[j, day], qa[j, day]), SampleMean(n, sb[j, day], qb[j, day])
                )
                for j in range(m)
            ]
            adjusted = adjust_comparisons(raw, "holm")
            any_raw |= any(not r.ci_low <= t <= r.ci_high for r, t in zip(raw, true, strict=True))
            any_adjusted |= any(
                not r.ci_low <= t <= r.ci_high for r, t in zip(adjusted, true, strict=True)
            )
        miss_adjusted += any_adjusted
        miss_raw += any_raw
    assert miss_adjusted / reps <= 0.05
    assert miss_raw / reps > 0.05
