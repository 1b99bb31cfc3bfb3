"""Sufficient statistics per arm: small frozen dataclasses whose mean and variance are derived.

Modelled on GrowthBook gbstats `models/statistics.py` (SampleMeanStatistic, ProportionStatistic,
RatioStatistic, RegressionAdjustedStatistic, QuantileStatistic). SQL computes the sums; these
classes turn them into moments. `variance` is always the per-unit variance; `variance_of_mean`
is the variance of the arm's estimate (variance / n, except for quantiles).
A statistic never raises on degenerate input: moments become NaN and the tests report why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from scipy.stats import norm

NAN = math.nan


def _sample_variance(n: float, total: float, sum_squares: float) -> float:
    # Unbiased sample variance from sums: (Σx² − (Σx)²/n) / (n − 1).
    if n < 2:
        return NAN
    return max((sum_squares - total * total / n) / (n - 1), 0.0)


def _sample_covariance(n: float, sum_x: float, sum_y: float, sum_xy: float) -> float:
    # Unbiased sample covariance from sums: (Σxy − ΣxΣy/n) / (n − 1).
    if n < 2:
        return NAN
    return (sum_xy - sum_x * sum_y / n) / (n - 1)


@dataclass(frozen=True)
class SampleMean:
    """A metric averaged over units: n units, Σx, Σx²."""

    n: int
    sum: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else NAN

    @property
    def variance(self) -> float:
        return _sample_variance(self.n, self.sum, self.sum_squares)

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n if self.n > 0 else NAN

    def __add__(self, other: SampleMean) -> SampleMean:
        return SampleMean(
            self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares
        )


@dataclass(frozen=True)
class Proportion:
    """A 0/1 metric: n units, of which `sum` converted."""

    n: int
    sum: float

    @property
    def sum_squares(self) -> float:
        return self.sum

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else NAN

    @property
    def variance(self) -> float:
        # Bernoulli variance p(1 − p), without the n − 1 correction, as gbstats does.
        p = self.mean
        return p * (1.0 - p) if self.n > 0 else NAN

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n if self.n > 0 else NAN

    def __add__(self, other: Proportion) -> Proportion:
        return Proportion(self.n + other.n, self.sum + other.sum)


@dataclass(frozen=True)
class Ratio:
    """Σ numerator / Σ denominator over n randomisation units (e.g. interruptions per turn
    when calls are randomised): the analysis unit differs from the randomisation unit."""

    n: int
    numerator_sum: float
    numerator_sum_squares: float
    denominator_sum: float
    denominator_sum_squares: float
    cross_sum: float  # Σ numerator·denominator, per unit

    @property
    def numerator(self) -> SampleMean:
        return SampleMean(self.n, self.numerator_sum, self.numerator_sum_squares)

    @property
    def denominator(self) -> SampleMean:
        return SampleMean(self.n, self.denominator_sum, self.denominator_sum_squares)

    @property
    def covariance(self) -> float:
        return _sample_covariance(self.n, self.numerator_sum, self.denominator_sum, self.cross_sum)

    @property
    def mean(self) -> float:
        return self.numerator_sum / self.denominator_sum if self.denominator_sum else NAN

    @property
    def variance(self) -> float:
        # Delta method for a ratio of means (gbstats utils.variance_of_ratios; Deng et al.
        # 2018, "Applying the Delta Method in Metric Analytics"):
        # v = v_M/μ_D² + v_D·μ_M²/μ_D⁴ − 2·cov·μ_M/μ_D³
        if self.n < 2 or not self.denominator_sum:
            return NAN
        m, d = self.numerator.mean, self.denominator.mean
        v = (
            self.numerator.variance / d**2
            + self.denominator.variance * m**2 / d**4
            - 2 * self.covariance * m / d**3
        )
        return max(v, 0.0)

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n if self.n > 0 else NAN

    def __add__(self, other: Ratio) -> Ratio:
        return Ratio(
            self.n + other.n,
            self.numerator_sum + other.numerator_sum,
            self.numerator_sum_squares + other.numerator_sum_squares,
            self.denominator_sum + other.denominator_sum,
            self.denominator_sum_squares + other.denominator_sum_squares,
            self.cross_sum + other.cross_sum,
        )


@dataclass(frozen=True)
class RegressionAdjusted:
    """CUPED input for one arm: the metric in the experiment (post), the same metric for the
    same unit before it started (pre, the covariate) and Σ post·pre. The adjustment itself
    needs θ pooled over arms, so it lives in `analysis.stats.cuped`."""

    post: SampleMean | Proportion
    pre: SampleMean | Proportion
    cross_sum: float

    @property
    def n(self) -> int:
        return self.post.n

    @property
    def mean(self) -> float:
        return self.post.mean

    @property
    def variance(self) -> float:
        return self.post.variance

    @property
    def variance_of_mean(self) -> float:
        return self.post.variance_of_mean

    @property
    def covariance(self) -> float:
        # A 0/1 metric's moments are binomial (divided by n, as its variance p(1 − p) is):
        # Σxy/n − ΣxΣy/n² (gbstats, F4); otherwise the unbiased sample covariance.
        if isinstance(self.post, Proportion):
            if self.n <= 0:
                return NAN
            return self.cross_sum / self.n - self.post.sum * self.pre.sum / self.n**2
        return _sample_covariance(self.n, self.post.sum, self.pre.sum, self.cross_sum)

    @property
    def pre_variance(self) -> float:
        """The covariate's variance on the same footing as the metric's: divided by n for a
        0/1 metric (binomial moments), by n − 1 otherwise."""
        v = self.pre.variance
        if isinstance(self.post, Proportion) and isinstance(self.pre, SampleMean) and self.n > 1:
            return v * (self.n - 1) / self.n
        return v

    def __add__(self, other: RegressionAdjusted) -> RegressionAdjusted:
        return RegressionAdjusted(
            _add(self.post, other.post), _add(self.pre, other.pre), self.cross_sum + other.cross_sum
        )


def _add(a: SampleMean | Proportion, b: SampleMean | Proportion) -> SampleMean | Proportion:
    if isinstance(a, Proportion) and isinstance(b, Proportion):
        return a + b
    return SampleMean(a.n + b.n, a.sum + b.sum, a.sum_squares + b.sum_squares)


# RegressionAdjustedRatio's ten sums of products
Products = tuple[float, float, float, float, float, float, float, float, float, float]


@dataclass(frozen=True)
class RegressionAdjustedRatio:
    """CUPED input for a ratio metric in one arm: per randomisation unit the experiment's
    numerator M and denominator D and the same unit's pre-period numerator Mx and denominator
    Dx (gbstats RegressionAdjustedRatioStatistic). `sums` are ΣM, ΣD, ΣMx, ΣDx; `products`
    the ten sums of products in the order MM, MD, MMx, MDx, DD, DMx, DDx, MxMx, MxDx, DxDx.
    The estimator lives in `analysis.stats.cuped.estimate_cuped_ratio_effect`."""

    n: int
    sums: tuple[float, float, float, float]
    products: Products

    @property
    def post(self) -> Ratio:
        (m, d, _, _), p = self.sums, self.products
        return Ratio(self.n, m, p[0], d, p[4], p[1])

    @property
    def pre(self) -> Ratio:
        (_, _, mx, dx), p = self.sums, self.products
        return Ratio(self.n, mx, p[7], dx, p[9], p[8])

    @property
    def mean(self) -> float:
        return self.post.mean

    @property
    def variance(self) -> float:
        return self.post.variance

    @property
    def variance_of_mean(self) -> float:
        return self.post.variance_of_mean

    def covariance_matrix(self) -> list[list[float]]:
        """Sample covariance (n − 1) of (M, D, Mx, Dx) per unit."""
        k, out = 0, [[NAN] * 4 for _ in range(4)]
        for i in range(4):
            for j in range(i, 4):
                c = _sample_covariance(self.n, self.sums[i], self.sums[j], self.products[k])
                out[i][j] = out[j][i] = c
                k += 1
        return out

    def __add__(self, other: RegressionAdjustedRatio) -> RegressionAdjustedRatio:
        a, b = self.sums, other.sums
        p, q = self.products, other.products
        return RegressionAdjustedRatio(
            self.n + other.n,
            (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]),
            cast(Products, tuple(x + y for x, y in zip(p, q, strict=True))),
        )


@dataclass(frozen=True)
class Quantile:
    """A quantile (e.g. p95 latency) of one arm with a distribution-free interval.

    `lower`/`upper` are the order statistics at ranks n·ν ∓ z·sqrt(n·ν(1−ν)), the normal
    approximation to the binomial order-statistic interval (Deng, Knoblich & Lu 2018, as in
    gbstats QuantileStatistic). `design_effect` inflates the variance when observations are
    clustered in randomisation units (turns within calls): var_cluster(Ī)/(ν(1−ν)/n) with Ī
    the share of observations at or below the estimate (Yao, Li & Lu 2024; gbstats
    QuantileClusteredStatistic). It is 1 for independent observations.
    """

    n: int  # observations
    nu: float  # quantile level, e.g. 0.95
    estimate: float
    lower: float
    upper: float
    confidence: float = 0.95  # the level `lower`/`upper` were taken at
    design_effect: float = 1.0
    n_units: int | None = None  # randomisation units, when clustered

    @property
    def mean(self) -> float:
        return self.estimate

    @property
    def variance_of_mean(self) -> float:
        # The interval half-width is z·sd(Q̂), so sd(Q̂) ≈ (upper − lower) / (2z).
        if self.n < 2 or not all(map(math.isfinite, (self.lower, self.upper))):
            return NAN
        z = float(norm.ppf(0.5 + self.confidence / 2))
        return ((self.upper - self.lower) / (2 * z)) ** 2 * self.design_effect

    @property
    def units(self) -> int:
        return self.n_units if self.n_units is not None else self.n

    @property
    def variance(self) -> float:
        return self.variance_of_mean * self.units


@dataclass(frozen=True)
class PostStratified:
    """A mean or rate standardised to fixed stratum weights: Σ w_h·μ_h with variance
    Σ w_h²·Var(μ̂_h), the post-stratified estimator (Cochran 1977, Sampling Techniques, 5.3
    and 5A.9). Two slices standardised to the same weights are compared as if they had the
    same mix of strata (e.g. the same traffic load), so the mix itself cannot look like an
    effect. Weights sum to 1; every stratum needs n ≥ 2 for its variance.

    Small strata would make the test too eager, so: a rate's stratum variance uses
    p̃ = (x + ½)/(n + 1), never 0 at 0 or n conversions (a continuity correction), and `dof`
    is the Satterthwaite degrees of freedom over the strata (Cochran 5A.6), which the Welch
    test uses instead of n − 1."""

    strata: tuple[SampleMean | Proportion, ...]
    weights: tuple[float, ...]

    @property
    def n(self) -> int:
        return sum(s.n for s in self.strata)

    @property
    def mean(self) -> float:
        if not self.strata:
            return NAN
        return sum(w * s.mean for w, s in zip(self.weights, self.strata, strict=True))

    def _terms(self) -> list[float]:
        # w_h² · Var(μ̂_h) per stratum
        terms = []
        for w, s in zip(self.weights, self.strata, strict=True):
            if isinstance(s, Proportion) and s.n > 0:
                p = (s.sum + 0.5) / (s.n + 1)
                terms.append(w * w * p * (1 - p) / s.n)
            else:
                terms.append(w * w * s.variance_of_mean)
        return terms

    @property
    def variance_of_mean(self) -> float:
        return sum(self._terms()) if self.strata else NAN

    @property
    def variance(self) -> float:
        return self.variance_of_mean * self.n

    @property
    def dof(self) -> float:
        terms = self._terms()
        denominator = sum(
            t * t / (s.n - 1) for t, s in zip(terms, self.strata, strict=True) if s.n > 1
        )
        return sum(terms) ** 2 / denominator if denominator > 0 else NAN


Statistic = (
    SampleMean
    | Proportion
    | Ratio
    | RegressionAdjusted
    | RegressionAdjustedRatio
    | Quantile
    | PostStratified
)


def add_statistics(a: Statistic, b: Statistic) -> Statistic:
    """Two statistics of one kind summed (one arm's days); quantiles and post-stratified
    statistics do not add up, nor do two of different kinds."""
    if isinstance(a, SampleMean) and isinstance(b, SampleMean):
        return a + b
    if isinstance(a, Proportion) and isinstance(b, Proportion):
        return a + b
    if isinstance(a, Ratio) and isinstance(b, Ratio):
        return a + b
    if isinstance(a, RegressionAdjusted) and isinstance(b, RegressionAdjusted):
        return a + b
    if isinstance(a, RegressionAdjustedRatio) and isinstance(b, RegressionAdjustedRatio):
        return a + b
    raise TypeError(f"a {type(a).__name__} and a {type(b).__name__} do not add up")


def quantile_ranks(n: int, nu: float, confidence: float = 0.95) -> tuple[int, int, int]:
    """1-based ranks (lower, estimate, upper) of the order statistics for a quantile interval.

    Normal approximation to Binomial(n, ν): ranks n·ν ∓ z·sqrt(n·ν(1−ν)), clamped to [1, n].
    """
    z = norm.ppf(0.5 + confidence / 2)
    half = z * math.sqrt(n * nu * (1 - nu))

    def clamp(r: float) -> int:
        return min(max(int(math.ceil(r)), 1), max(n, 1))

    return clamp(n * nu - half), clamp(n * nu), clamp(n * nu + half)


def quantile_from_values(values: Iterable[float], nu: float, confidence: float = 0.95) -> Quantile:
    """A Quantile statistic from raw observations (for small data and tests)."""
    import numpy as np

    x = np.sort(np.asarray(values, dtype=float))
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Quantile(0, nu, NAN, NAN, NAN, confidence)
    lo, mid, hi = quantile_ranks(n, nu, confidence)
    return Quantile(n, nu, float(x[mid - 1]), float(x[lo - 1]), float(x[hi - 1]), confidence)


def quantile_interval_supported(n: int, nu: float, confidence: float = 0.95) -> bool:
    """Whether n is large enough for the order-statistic interval to lie inside the sample:
    n > z²ν/(1−ν) and n > z²(1−ν)/ν (gbstats' rule)."""
    z = float(norm.ppf(0.5 + confidence / 2))
    return n > z * z * nu / (1 - nu) and n > z * z * (1 - nu) / nu
