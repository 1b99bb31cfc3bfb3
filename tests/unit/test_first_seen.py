"""Release first-seen times and the newest row, read through the hourly rollups, equal the
raw tables' minima and maxima."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from analysis.benchmarks import releases
from analysis.errors import release_order
from analysis.first_seen import latest, release_first_seen
from collectors.warehouse import migrate
from tests.rollup_tables import build_rollups

T0 = datetime(2026, 4, 6)


def _insert(con, table: str, frame: pd.DataFrame) -> None:
    con.register("frame", frame)
    con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM frame")
    con.unregister("frame")


def _warehouse(with_rollups: bool) -> duckdb.DuckDBPyConnection:
    """Four releases over three days; v3 is first seen in an error before any request, v4
    only in calls; v2 has a deployment an hour before its traffic."""
    rng = np.random.default_rng(5)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    migrate(con)
    n = 3000
    at = T0 + pd.to_timedelta(np.sort(rng.uniform(0, 3 * 86400, n)), unit="s")
    release = np.select(
        [at < T0 + timedelta(hours=20), at < T0 + timedelta(hours=47, minutes=30)],
        ["v1", "v2"],
        "v3",
    )
    _insert(
        con,
        "requests",
        pd.DataFrame(
            {
                "request_id": [f"r{i}" for i in range(n)],
                "started_at": at,
                "route": "/x",
                "method": "GET",
                "status_code": 200,
                "duration_ms": 10.0,
                "release": release,
            }
        ),
    )
    _insert(
        con,
        "errors",
        pd.DataFrame(
            {
                "error_id": ["e1", "e2"],
                "occurred_at": [T0 + timedelta(hours=47, minutes=12, seconds=7), T0],
                "error_type": "ValueError",
                "message": "boom",
                "fingerprint": "f",
                "release": ["v3", "v1"],
            }
        ),
    )
    _insert(
        con,
        "calls",
        pd.DataFrame(
            {
                "call_id": ["c1", "c2"],
                "started_at": [
                    T0 + timedelta(hours=60, seconds=13),
                    T0 + timedelta(hours=61, minutes=5, seconds=3),
                ],
                "release": ["v4", "v4"],
            }
        ),
    )
    _insert(
        con,
        "deployments",
        pd.DataFrame(
            {
                "deployment_id": ["d2"],
                "release": ["v2"],
                "created_at": [T0 + timedelta(hours=19)],
                "status": ["SUCCESS"],
            }
        ),
    )
    if with_rollups:
        for table in ("requests", "errors", "calls"):
            build_rollups(con, table)
    return con


@pytest.fixture(scope="module")
def pair():
    raw, rolled = _warehouse(False), _warehouse(True)
    yield raw, rolled
    raw.close()
    rolled.close()


def test_first_seen_through_the_rollups_equals_the_raw_minimum(pair):
    raw, rolled = pair
    tables = ("requests", "errors", "calls")
    expected = dict(
        raw.execute(
            "SELECT release, min(t) FROM (SELECT release, started_at AS t FROM requests "
            "UNION ALL SELECT release, occurred_at FROM errors "
            "UNION ALL SELECT release, started_at FROM calls) GROUP BY release"
        ).fetchall()
    )
    assert release_first_seen(rolled, tables) == expected
    assert release_first_seen(raw, tables) == expected
    assert expected["v3"] == T0 + timedelta(hours=47, minutes=12, seconds=7)  # the error


def test_release_order_is_the_same_with_and_without_rollups(pair):
    raw, rolled = pair
    assert release_order(rolled) == release_order(raw) == ["v1", "v2", "v3"]


@pytest.mark.parametrize("table", ["requests", "calls", "errors"])
def test_latest_through_the_rollup_equals_the_raw_maximum(pair, table):
    raw, rolled = pair
    column = "occurred_at" if table == "errors" else "started_at"
    expected = raw.execute(f"SELECT max({column}) FROM {table}").fetchone()[0]
    assert latest(rolled, table) == latest(raw, table) == expected
    assert latest(rolled, table).second != 0 or latest(rolled, table).microsecond != 0


def test_benchmark_releases_through_the_rollups_equal_the_raw_first_appearances(pair):
    raw, rolled = pair
    expected = raw.execute(
        "SELECT release, min(t) AS first_seen FROM ("
        " SELECT release, created_at AS t FROM deployments"
        " WHERE upper(coalesce(status, '')) NOT IN ('FAILED', 'CRASHED')"
        " UNION ALL SELECT release, started_at FROM calls"
        " UNION ALL SELECT release, started_at FROM requests"
        ") WHERE release IS NOT NULL GROUP BY release ORDER BY first_seen, release"
    ).fetchall()
    assert releases(rolled) == releases(raw) == expected
    assert [r for r, _ in expected] == ["v1", "v2", "v3", "v4"]
    assert dict(expected)["v2"] == T0 + timedelta(hours=19)  # its deployment, before traffic
