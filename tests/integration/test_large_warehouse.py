"""The large-warehouse generator (bench/gen_large_warehouse.py) at a tiny size: the real
publisher accepts what it writes, and its calls, turns and the rows that point at calls fit
together, so the page benchmark's data cannot rot unnoticed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import duckdb
import pytest

from collectors.snapshot import open_snapshot

GENERATOR = Path(__file__).resolve().parents[2] / "bench" / "gen_large_warehouse.py"
CALLS = 2000
DAYS = 3


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_large_warehouse", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bigdata")
    _generator().build("2k", out, "1GB", 2, days=DAYS, log=False)
    return out / "2k"


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    assert row is not None
    return int(row[0])


def test_every_call_has_its_turns_and_its_satellite_rows(generated: Path) -> None:
    con = duckdb.connect(str(generated / "warehouse.duckdb"), read_only=True)
    assert _one(con, "SELECT count(*) FROM calls") == CALLS
    # A call's `turns` is the number of its voice_turns rows, indexed 0..turns-1.
    assert (
        _one(
            con,
            """
            SELECT count(*) FROM calls c LEFT JOIN (
                SELECT call_id, count(*) AS n, min(turn_index) AS lo, max(turn_index) AS hi,
                       count(DISTINCT turn_index) AS distinct_n
                FROM voice_turns GROUP BY call_id) t USING (call_id)
            WHERE t.n IS DISTINCT FROM c.turns OR t.lo <> 0 OR t.hi <> c.turns - 1
               OR t.distinct_n <> c.turns
            """,
        )
        == 0
    )
    for table in ("voice_turns", "voice_quality", "feedback", "feature_usage", "errors"):
        orphans = _one(
            con,
            f"SELECT count(*) FROM {table} x WHERE x.call_id IS NOT NULL "  # noqa: S608
            "AND NOT EXISTS (SELECT 1 FROM calls c WHERE c.call_id = x.call_id)",
        )
        assert orphans == 0, f"{table} has rows for calls that do not exist"
    # Turns happen during their call; one quality sample per call.
    assert (
        _one(
            con,
            "SELECT count(*) FROM voice_turns t JOIN calls c USING (call_id) "
            "WHERE t.started_at < c.started_at OR t.started_at > c.ended_at",
        )
        == 0
    )
    assert _one(con, "SELECT count(DISTINCT call_id) FROM voice_quality") == CALLS
    # Every call in the experiment's period is exposed once, in the arm its row names.
    assert _one(con, "SELECT count(*) FROM calls WHERE variant IS NOT NULL") == _one(
        con, "SELECT count(*) FROM experiment_exposures"
    )
    assert (
        _one(
            con,
            "SELECT count(*) FROM experiment_exposures e JOIN calls c "
            "ON c.call_id = e.unit_id WHERE e.variant <> c.variant",
        )
        == 0
    )
    arms = dict(
        con.execute("SELECT variant, count(*) FROM experiment_exposures GROUP BY 1").fetchall()
    )
    assert set(arms) == {"control", "treatment"}
    assert 0.4 < arms["treatment"] / sum(arms.values()) < 0.6
    con.close()


def test_the_published_snapshot_holds_the_rows_and_their_rollups(generated: Path) -> None:
    warehouse = duckdb.connect(str(generated / "warehouse.duckdb"), read_only=True)
    turns = _one(warehouse, "SELECT count(*) FROM voice_turns")
    requests = _one(warehouse, "SELECT count(*) FROM requests")
    warehouse.close()
    snapshot = open_snapshot(generated / "serving")  # raises if a file it names is unreadable
    con = snapshot.con
    assert _one(con, "SELECT count(*) FROM calls") == CALLS
    assert _one(con, "SELECT count(*) FROM voice_turns") == turns
    assert _one(con, "SELECT count(*) FROM requests") == requests
    # The hourly rollups the pages read count the same rows.
    assert _one(con, "SELECT sum(n) FROM calls_hourly") == CALLS
    assert _one(con, "SELECT sum(n) FROM turns_hourly") == turns
    assert _one(con, "SELECT sum(n) FROM requests_hourly") == requests
    assert _one(con, "SELECT count(DISTINCT CAST(started_at AS DATE)) FROM calls") == DAYS
    summary = json.loads((generated / "generation.json").read_text())
    assert summary["rows"]["calls"] == CALLS
    assert summary["rows"]["voice_turns"] == turns
