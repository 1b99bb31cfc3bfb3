"""Host resources per host against thresholds, and their hourly means."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.infrastructure import resource_usage, resources_hourly

MIGRATION = Path(__file__).resolve().parents[2] / "collectors" / "migrations" / "0001_initial.sql"
T0 = datetime(2025, 2, 1)
T1 = T0 + timedelta(days=1)


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute(MIGRATION.read_text())
    yield c
    c.close()


def _insert(con, table: str, df: pd.DataFrame) -> None:
    con.register("tmp_df", df)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM tmp_df")
    con.unregister("tmp_df")


def test_resource_share_over_threshold(con):
    rng = np.random.default_rng(2)
    cpu = rng.uniform(0, 100, 500)
    df = pd.DataFrame(
        {
            "host": "agent-1",
            "sampled_at": [T0 + timedelta(minutes=i) for i in range(500)],
            "cpu_pct": cpu,
            "memory_pct": 50.0,
            "disk_pct": np.nan,
        }
    )
    _insert(con, "resource_samples", df)
    res = resource_usage(con, T0, T1, thresholds={"cpu_pct": 80.0, "memory_pct": 90.0}).frame
    row = res[res.metric == "cpu_pct"].iloc[0]
    assert row["share_over"] == pytest.approx((cpu > 80).mean())
    assert row["p95"] == pytest.approx(np.percentile(cpu, 95))
    assert res[res.metric == "memory_pct"].iloc[0]["share_over"] == 0
    assert "disk_pct" not in set(res.metric)  # all-NaN metric has no samples


def test_hourly_means_per_host(con):
    df = pd.DataFrame(
        {
            "host": ["a", "a", "a", "b"],
            "sampled_at": [T0, T0 + timedelta(minutes=30), T0 + timedelta(hours=1), T0],
            "cpu_pct": [10.0, 30.0, 50.0, 70.0],
        }
    )
    _insert(con, "resource_samples", df)
    hourly = resources_hourly(con, T0, T1)
    assert list(zip(hourly["host"], hourly["cpu_pct"], strict=True)) == [
        ("a", 20.0),
        ("b", 70.0),
        ("a", 50.0),
    ]
    assert hourly["cpu_max_pct"].iloc[0] == 30.0


def test_no_samples_give_a_reason(con):
    assert resource_usage(con, T0, T1).reason
