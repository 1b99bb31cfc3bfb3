"""DDSketch-style histograms: relative error against exact quantiles, SQL buckets, merging."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.sketch import (
    ALPHA,
    ZERO_BUCKET,
    bucket_index,
    bucket_sql,
    bucket_value,
    gamma,
    histogram_rollup,
    quantiles_from_buckets,
    quantiles_from_rollup,
    sketch_values,
)

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
QS = (0.5, 0.9, 0.95, 0.99)
T0 = datetime(2025, 1, 1)


def _within_alpha(est: float, data: np.ndarray, q: float) -> bool:
    # exact rank-based quantile bracket: DDSketch's guarantee is against the item of rank
    # q*(n-1); numpy's "lower"/"higher" bound it, so ties/interpolation are tolerated
    lo = np.quantile(data, q, method="lower")
    hi = np.quantile(data, q, method="higher")
    return lo * (1 - ALPHA) - 1e-9 <= est <= hi * (1 + ALPHA) + 1e-9


def test_relative_error_on_lognormal_within_one_percent():
    rng = np.random.default_rng(42)
    data = rng.lognormal(mean=6.0, sigma=0.8, size=50_000)
    est = sketch_values(data, QS)
    for q in QS:
        exact = np.quantile(data, q)
        assert abs(est.values[q] - exact) / exact <= ALPHA + 2e-3  # 1 % + tie tolerance
        assert _within_alpha(est.values[q], data, q)


def test_bucket_bounds_and_representative_value():
    g = gamma(0.01)
    assert g == pytest.approx(1.01 / 0.99)
    x = np.array([1.0, 10.0, 123.4, 5000.0])
    i = bucket_index(x)
    assert np.all(g ** (i - 1) < x) and np.all(x <= g**i)
    assert np.all(np.abs(bucket_value(i) - x) / x <= 0.01 + 1e-12)
    assert bucket_index([0.0, -3.0, np.nan]).tolist() == [ZERO_BUCKET, ZERO_BUCKET]


def test_sql_buckets_equal_numpy_buckets():
    con = duckdb.connect()
    rng = np.random.default_rng(7)
    vals = np.concatenate([rng.lognormal(5, 1.2, 20_000), [0.0, 1.0, 250.0]])
    con.register("v", pd.DataFrame({"x": vals}))
    got = con.execute(f"SELECT {bucket_sql('x')} AS b FROM v").df()["b"].to_numpy()
    assert (got == bucket_index(vals)).mean() >= 0.9999  # last-ulp ln differences only
    with pytest.raises(ValueError):
        bucket_sql("x; DROP TABLE v")


def test_merged_hourly_rollups_give_same_quantiles_as_one_pass():
    con = duckdb.connect()
    con.execute(MIGRATION.read_text())
    rng = np.random.default_rng(11)
    n = 20_000
    df = pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "started_at": [T0 + timedelta(seconds=int(s)) for s in rng.integers(0, 86400 * 2, n)],
            "route": rng.choice(["/a", "/b"], n),
            "method": "GET",
            "status_code": 200,
            "duration_ms": rng.lognormal(4, 0.7, n),
            "release": "1",
            "service": "s",
            "user_id": None,
            "ip": None,
            "call_id": None,
        }
    )
    con.register("d", df)
    con.execute("INSERT INTO requests SELECT * FROM d")
    roll = histogram_rollup(con, "requests", "duration_ms", T0, T0 + timedelta(days=2), ["route"])
    assert roll.reason is None and roll.frame["period"].nunique() == 48
    per_route = quantiles_from_rollup(roll.frame, QS, by=["route"])
    for _, row in per_route.iterrows():
        data = df.loc[df.route == row["route"], "duration_ms"].to_numpy()
        assert row["n"] == len(data)
        one_pass = sketch_values(data, QS)
        assert row["p95"] == pytest.approx(one_pass.values[0.95])
        for q, col in zip(QS, ["p50", "p90", "p95", "p99"], strict=True):
            assert _within_alpha(row[col], data, q)


def test_rollup_rejects_unknown_identifiers_and_empty_input():
    con = duckdb.connect()
    con.execute(MIGRATION.read_text())
    assert histogram_rollup(con, "users", "x", T0, T0).reason
    assert histogram_rollup(con, "requests", "route", T0, T0).reason
    assert histogram_rollup(con, "requests", "duration_ms", T0, T0, ["ip"]).reason
    assert histogram_rollup(con, "requests", "duration_ms", T0, T0 + timedelta(1)).reason
    assert quantiles_from_buckets([], [], QS).reason


def test_published_rollup_buckets_read_back_with_these_quantiles():
    # collectors.rollups writes the histograms pages read; its buckets must mean the same here
    from collectors.rollups import bucket_sql as published_bucket_sql

    con = duckdb.connect()
    vals = np.concatenate([np.random.default_rng(3).lognormal(5, 1, 5000), [0.0]])
    con.register("v", pd.DataFrame({"x": vals}))
    theirs = con.execute(f"SELECT {published_bucket_sql('x')} AS b FROM v").df()["b"]
    ours = con.execute(f"SELECT {bucket_sql('x')} AS b FROM v").df()["b"]
    assert (theirs.to_numpy() == ours.to_numpy()).all()
