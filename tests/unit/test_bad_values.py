"""A bad value costs only its row: on spool JSON lines and on Arrow batches shaped like the
demo's, each bad row lands in `rejects` with a reason naming the column and the value, the rest
of the batch lands, the run ends partial with the count, and the next run reads nothing new.
(The Postgres and REST paths: tests/integration/test_bad_values_sources.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from analysis.vocabulary import OUTCOMES as ANALYSIS_OUTCOMES
from collectors import schema
from collectors.engine import MAX_REJECT_ROW_CHARS, _reject_json, run_source
from collectors.instrumentation import checks, errors, user_experience
from collectors.schema import TABLES
from collectors.sources import demo, probes
from collectors.sources.base import Batch
from collectors.sources.demo import DAY_US, DemoSimulator, _us
from collectors.sources.spool import SpoolSource
from collectors.validate import validate
from collectors.warehouse import open_warehouse

NOW = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
NAN, INF = float("nan"), float("inf")

GOOD = {
    "requests": {"started_at": NOW, "route": "/v1/calls", "method": "GET", "status_code": 200,
                 "duration_ms": 12.5},
    "calls": {"started_at": NOW, "outcome": "resolved", "duration_s": 31.0},
    "errors": {"occurred_at": NOW, "error_type": "KeyError", "severity": "error"},
    "feedback": {"submitted_at": NOW, "rating": 4},
    "probe_results": {"checked_at": NOW, "status": "up", "latency_ms": 80.0},
    "voice_quality": {"measured_at": NOW, "packet_loss_pct": 0.5, "mos_reported": 4.2},
}  # fmt: skip

# (table, column, bad value, what the reason must say); each becomes one row.
BAD = [
    ("requests", "duration_ms", NAN, "duration_ms is not a finite number: nan"),
    ("requests", "duration_ms", INF, "duration_ms is not a finite number: inf"),
    ("requests", "duration_ms", -INF, "duration_ms is not a finite number: -inf"),
    ("requests", "duration_ms", -3.0, "duration_ms is below 0: -3.0"),
    ("requests", "status_code", 42, "status_code is outside 100..599: 42"),
    ("requests", "started_at", NOW + timedelta(days=2), "started_at is in the future: '"),
    ("requests", "started_at", datetime(1999, 12, 31, tzinfo=UTC),
     "started_at is before 2000-01-01: '1999-12-31T00:00:00+00:00'"),
    ("requests", "route", "/x" * 400, "route is longer than 512 characters"),
    ("calls", "outcome", "exploded",
     "outcome is not one of resolved|escalated|abandoned|failed: 'exploded'"),
    ("errors", "severity", "catastrophic",
     "severity is not one of debug|info|warning|error|critical: 'catastrophic'"),
    ("feedback", "rating", 42, "rating is outside 1..5: 42"),
    ("probe_results", "status", "sideways", "status is not one of up|pending|down|"),
    ("voice_quality", "packet_loss_pct", 140.0, "packet_loss_pct is outside 0..100: 140.0"),
    ("voice_quality", "mos_reported", 0.5, "mos_reported is outside 1..5: 0.5"),
]  # fmt: skip
# Only JSON can carry these (an Arrow column has one type).
BAD_JSON_ONLY = [
    ("requests", "status_code", "200", "status_code is a str, not an integer: '200'"),
    ("requests", "started_at", "infinity", "started_at is not an ISO 8601 timestamp: 'infinity'"),
    ("calls", "outcome", 3, "outcome is not one of resolved|escalated|abandoned|failed: 3"),
    ("feedback", "rating", "five", "rating is a str, not an integer: 'five'"),
]
GOOD_PER_TABLE = 3


def key_of(table: str) -> str:
    return TABLES[table].key[0]


def rows_for(table: str, bad: list[tuple]) -> list[dict]:
    """GOOD_PER_TABLE good rows, then one row per bad case of `table` (keyed bad-<n>)."""
    rows = [{**GOOD[table], key_of(table): f"good-{i}"} for i in range(GOOD_PER_TABLE)]
    for n, (t, column, value, _) in enumerate(bad):
        if t == table:
            rows.append({**GOOD[table], key_of(table): f"bad-{n}", column: value})
    return rows


@pytest.fixture
def con(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    yield con
    con.close()


def assert_each_bad_row_rejected(con, bad: list[tuple]) -> None:
    """Every table kept exactly its good rows; every bad row is in rejects with its reason."""
    for table in GOOD:
        kept = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert kept == GOOD_PER_TABLE, table
    stored = {}
    for table_name, row_json, reason in con.execute(
        "SELECT table_name, row_json, reason FROM rejects"
    ).fetchall():
        row = json.loads(row_json)  # the stored copy is valid JSON
        stored[(table_name, row[key_of(table_name)])] = reason
    assert len(stored) == len(bad)
    for n, (table, _, _, says) in enumerate(bad):
        assert says in stored[(table, f"bad-{n}")]


# ---- spool JSON lines -------------------------------------------------------------------------


def write_spool(directory, bad: list[tuple]) -> None:
    for table in GOOD:
        lines = [json.dumps(r, default=lambda v: v.isoformat()) for r in rows_for(table, bad)]
        folder = directory / table
        folder.mkdir(parents=True)
        # A sealed file, named as the SDK names them; json.dumps writes NaN/Infinity literally,
        # as the SDK's spool writer would.
        (folder / "20260101T000000000000-1-000001.jsonl").write_text("\n".join(lines) + "\n")


def test_spool_lines_with_bad_values_cost_only_their_rows(tmp_path, con):
    bad = BAD + BAD_JSON_ONLY
    write_spool(tmp_path / "spool", bad)
    src = SpoolSource(tmp_path / "spool")
    first = run_source(con, src)
    assert (first.status, first.rows_rejected) == ("partial", len(bad))
    assert first.rows_inserted == GOOD_PER_TABLE * len(GOOD)
    assert_each_bad_row_rejected(con, bad)
    second = run_source(con, src)
    assert (second.status, second.rows_read, second.error) == ("ok", 0, None)


# ---- Arrow batches shaped like the demo's -----------------------------------------------------


def demo_shaped(table: str, rows: list[dict]) -> pa.Table:
    """As the demo builds them: aware microsecond timestamps, float64, int32/int64, text."""
    types = {"TIMESTAMP": pa.timestamp("us", tz="UTC"), "DOUBLE": pa.float64(),
             "INTEGER": pa.int32(), "BIGINT": pa.int64(), "VARCHAR": pa.string(),
             "BOOLEAN": pa.bool_()}  # fmt: skip
    columns = [c for c in TABLES[table].columns if c.name in rows[0] or c.name in TABLES[table].key]
    return pa.table(
        {c.name: pa.array([r.get(c.name) for r in rows], types[c.type]) for c in columns}
    )


class ArrowSource:
    """One batch per table; each table is its own stream, committed with its batch."""

    name = "arrow"

    def __init__(self, batches: dict[str, pa.Table]):
        self.batches = batches

    def fetch(self, marks):
        for table, data in self.batches.items():
            if marks.get(table) != "done":
                yield Batch(table, data, stream=table, watermark="done")


def test_arrow_batches_with_bad_values_cost_only_their_rows(con):
    src = ArrowSource({t: demo_shaped(t, rows_for(t, BAD)) for t in GOOD})
    first = run_source(con, src)
    assert (first.status, first.rows_rejected) == ("partial", len(BAD))
    assert first.rows_inserted == GOOD_PER_TABLE * len(GOOD)
    assert_each_bad_row_rejected(con, BAD)
    second = run_source(con, src)
    assert (second.status, second.rows_read, second.error) == ("ok", 0, None)


def test_a_nan_in_a_required_number_is_rejected_not_a_failed_batch(con):
    """It used to pass the column-wise check, become NULL, and fail the insert (NOT NULL)."""
    rows = [{**GOOD["requests"], "request_id": f"r{i}"} for i in range(5)]
    rows[2]["duration_ms"] = NAN
    summary = run_source(con, ArrowSource({"requests": demo_shaped("requests", rows)}))
    assert (summary.status, summary.rows_inserted, summary.rows_rejected) == ("partial", 4, 1)
    reason = con.execute("SELECT reason FROM rejects").fetchone()[0]
    assert reason == "duration_ms is not a finite number: nan"


def test_text_timestamps_are_parsed_column_wise_and_bad_ones_rejected_with_their_value():
    """How the Postgres source hands over a chunk holding 'infinity': timestamps as ISO text."""
    good = (NOW - timedelta(seconds=5)).isoformat(sep=" ")
    texts = [good, "infinity", "-infinity", "2026-01-01 00:00:00", "0044-03-15 00:00:00 BC", good]
    rows = [{**GOOD["requests"], "request_id": f"r{i}"} for i in range(len(texts))]
    data = demo_shaped("requests", rows).set_column(1, "started_at", pa.array(texts))
    checked = validate(TABLES["requests"], data)
    assert checked.table.num_rows == 2
    assert checked.table.column("started_at")[0].as_py() == NOW.replace(tzinfo=None) - timedelta(
        seconds=5
    )
    assert [r.reason for r in checked.rejected] == [
        "started_at is not an ISO 8601 timestamp: 'infinity'",
        "started_at is not an ISO 8601 timestamp: '-infinity'",
        "started_at is a naive timestamp (no time zone): '2026-01-01 00:00:00'",
        "started_at is not an ISO 8601 timestamp: '0044-03-15 00:00:00 BC'",
    ]


def test_a_number_given_as_text_is_rejected_on_arrow_as_on_rows():
    rows = [{**GOOD["requests"], "request_id": f"r{i}"} for i in range(2)]
    data = demo_shaped("requests", rows).set_column(4, "status_code", pa.array(["200", "abc"]))
    checked = validate(TABLES["requests"], data)
    assert checked.table.num_rows == 0
    assert [r.reason for r in checked.rejected] == [
        "status_code is a str, not an integer: '200'",
        "status_code is a str, not an integer: 'abc'",
    ]


def test_both_paths_give_the_same_reasons():
    for table in GOOD:
        rows = rows_for(table, BAD)
        by_rows = [r.reason for r in validate(TABLES[table], rows).rejected]
        by_arrow = [r.reason for r in validate(TABLES[table], demo_shaped(table, rows)).rejected]
        # The row path also says how long an oversize text is.
        assert [r.replace(" (800)", "") for r in by_rows] == by_arrow, table


def test_a_long_value_is_shown_shortened_in_the_reason():
    rows = rows_for("calls", [("calls", "outcome", "boom" * 100, "")])
    reason = validate(TABLES["calls"], rows).rejected[0].reason
    shown = reason.split(": ", 1)[1]
    assert shown.startswith("'boomboom") and shown.endswith("…") and len(shown) == 60


# ---- the demo -------------------------------------------------------------------------------


def test_demo_floats_carry_null_not_nan_and_a_demo_day_has_no_rejects():
    sim = DemoSimulator(7, datetime(2026, 3, 2, 13, 37, tzinfo=UTC))
    floats = sim._array("float", np.array([1.5, np.nan]), "DOUBLE")
    assert floats.null_count == 1 and floats.to_pylist() == [1.5, None]
    ints = sim._array("int", np.array([3.0, np.nan]), "INTEGER")
    assert ints.to_pylist() == [3, None]
    end = _us(datetime(2026, 3, 2, 13, 0, tzinfo=UTC))
    now = datetime(2026, 3, 2, 13, 37, tzinfo=UTC)
    for name, data in sim.window(end - DAY_US, end).items():
        assert validate(TABLES[name], data, now=now).rejected == [], name


# ---- the rules agree with every producer ------------------------------------------------------


def test_allowed_sets_agree_with_analysis_and_every_producer():
    assert schema.OUTCOMES == ANALYSIS_OUTCOMES == user_experience.OUTCOMES == demo.OUTCOMES
    assert set(errors.SEVERITIES) <= set(TABLES["errors"].column("severity").allowed)
    allowed = set(TABLES["probe_results"].column("status").allowed)
    assert set(probes.STATES) | set(checks.STATUSES) | set(demo.PROBE_STATUSES) <= allowed
    # Unknown deployment statuses are kept (a new Railway status is data, not an error).
    assert TABLES["deployments"].column("status").allowed is None


def test_units_bound_their_columns():
    for spec in TABLES.values():
        for c in spec.columns:
            if c.name.endswith("_pct"):
                assert (c.low, c.high) == (0, 100), c.name
            elif c.name.endswith(("_ms", "_s")):
                assert c.low == 0 and c.high is None, c.name
    assert (
        TABLES["requests"].column("status_code").low,
        TABLES["requests"].column("status_code").high,
    ) == (100, 599)


# ---- the stored copy of a rejected row --------------------------------------------------------


def test_a_rejected_rows_stored_copy_stays_valid_json_when_shortened():
    row = {"request_id": "r1", "stack": "x" * 20_000, "nested": {"a": [1, 2]}, "n": NAN,
           "when": NOW, "big": 10**400}  # fmt: skip
    text = _reject_json(row)
    assert len(text) <= MAX_REJECT_ROW_CHARS
    stored = json.loads(text)
    assert stored["request_id"] == "r1" and stored["nested"] == {"a": [1, 2]}
    assert stored["stack"].startswith("xxxx") and stored["stack"].endswith("chars)")
    assert stored["n"] == "nan" and stored["when"] == str(NOW)
    many = _reject_json({f"field{i}": "v" * 40 for i in range(2_000)})
    assert len(many) <= MAX_REJECT_ROW_CHARS and json.loads(many)["…"].endswith("more fields")
