"""The demo source: deterministic, split-invariant, schema-true, and carrying its planted facts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from collectors.demo_truth import demo_truth, emodel_mos, emodel_r, experiment_variant
from collectors.schema import TABLES
from collectors.sources.demo import DAY_US, HOUR_US, MINUTE_US, DemoSimulator, DemoSource, _us

ANCHOR = datetime(2026, 3, 2, 13, 37, tzinfo=UTC)


def _sorted(table: pa.Table, name: str) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in TABLES[name].key])


def _union(parts: list[dict[str, pa.Table]]) -> dict[str, pa.Table]:
    return {name: _sorted(pa.concat_tables([p[name] for p in parts]), name) for name in TABLES}


def _timestamps(table: pa.Table) -> list[str]:
    return [f.name for f in table.schema if pa.types.is_timestamp(f.type)]


def test_any_split_of_a_range_gives_the_single_window_dataset():
    start = _us(ANCHOR) - 2 * DAY_US + 17 * MINUTE_US
    end = start + 2 * DAY_US
    whole = _union([DemoSimulator(7, ANCHOR).window(start, end)])
    cuts = [0, 41 * MINUTE_US, 5 * HOUR_US, 5 * HOUR_US + MINUTE_US, 23 * HOUR_US, 30 * HOUR_US]
    cuts.append(41 * HOUR_US + 59 * MINUTE_US)
    bounds = [start + c for c in cuts] + [end]
    fresh = DemoSimulator(7, ANCHOR)
    split = _union([fresh.window(a, b) for a, b in zip(bounds, bounds[1:], strict=False)])
    assert len(bounds) - 1 == 7
    for name in TABLES:
        assert split[name].num_rows == whole[name].num_rows, name
        assert split[name].equals(whole[name]), name
    assert whole["calls"].num_rows > 4000


def test_same_seed_same_data_other_seed_other_data():
    a, b = _us(ANCHOR) - 3 * HOUR_US, _us(ANCHOR)
    one = DemoSimulator(7, ANCHOR).window(a, b)
    two = DemoSimulator(7, ANCHOR).window(a, b)
    other = DemoSimulator(8, ANCHOR).window(a, b)
    for name in TABLES:
        assert one[name].equals(two[name]), name
    assert not one["voice_turns"].equals(other["voice_turns"])


def test_columns_are_schema_columns_and_keys_are_unique():
    tables = DemoSimulator(7, ANCHOR).window(_us(ANCHOR) - DAY_US, _us(ANCHOR))
    con = duckdb.connect()
    for name, table in tables.items():
        schema = TABLES[name]
        assert set(table.column_names) <= set(schema.column_names), name
        for col in schema.columns:
            if col.required:
                assert col.name in table.column_names, (name, col.name)
                assert table[col.name].null_count == 0, (name, col.name)
        for f in table.schema:
            if schema.column(f.name).type == "TIMESTAMP":
                assert f.type == pa.timestamp("us", tz="UTC"), (name, f.name)
        con.register("t", table)
        keys = ", ".join(schema.key)
        dup = con.execute(f"SELECT count(*) - count(DISTINCT ({keys})) FROM t").fetchall()[0][0]
        assert dup == 0, name
        con.unregister("t")


def test_first_run_backfills_then_each_run_adds_only_new_minutes():
    clock = [ANCHOR + timedelta(seconds=42)]
    source = DemoSource(seed=7, history_days=4, now=lambda: clock[0])
    first = list(source.fetch({}))
    marks = [b.watermark for b in first if b.watermark]
    assert len(marks) == 2  # one per chunk (3 simulated days), on the chunk's last batch
    assert first[-1].watermark == marks[-1]
    state = json.loads(marks[-1])
    assert datetime.fromisoformat(state["anchor"]) == ANCHOR
    assert datetime.fromisoformat(state["until"]) == ANCHOR
    assert {b.stream_name for b in first} == {"demo"}

    clock[0] = ANCHOR + timedelta(minutes=7, seconds=13)
    second = list(source.fetch({"demo": marks[-1]}))
    assert json.loads(second[-1].watermark)["until"] == (ANCHOR + timedelta(minutes=7)).isoformat()
    assert sum(b.rows.num_rows for b in second if b.table == "probe_results") == 7 * 4

    for batch in first + second:
        for col in _timestamps(batch.rows):
            latest = pa.compute.max(batch.rows[col]).as_py()
            assert latest is None or latest <= clock[0], (batch.table, col)

    got: dict[str, list[pa.Table]] = {}
    for batch in first + second:
        got.setdefault(batch.table, []).append(batch.rows)
    expected = DemoSimulator(7, ANCHOR, 4).window(
        _us(ANCHOR) - 4 * DAY_US, _us(ANCHOR) + 7 * MINUTE_US
    )
    for name, table in expected.items():
        if table.num_rows:
            assert _sorted(pa.concat_tables(got[name]), name).equals(_sorted(table, name)), name

    assert list(source.fetch({"demo": second[-1].watermark})) == []  # same minute: nothing new


def test_a_day_holds_enough_rows_for_two_million_a_month():
    tables = DemoSimulator(7, ANCHOR).window(_us(ANCHOR) - DAY_US, _us(ANCHOR))
    per_day = sum(t.num_rows for t in tables.values())
    assert per_day * 30 >= 2_000_000
    assert all(tables[name].num_rows > 0 for name in ("calls", "requests", "errors", "feedback"))


def test_emodel_matches_g107_published_values():
    # G.107 with every parameter at its default: R = 93.2, MOS = 4.41 (reference section 6.1).
    assert float(emodel_r(0.0, 0.0, 0.0, "G.711")) == pytest.approx(93.2)
    assert float(emodel_mos(0.0, 0.0, 0.0, "G.711")) == pytest.approx(4.41, abs=0.005)
    # Ta = 200 ms: X = 1, Idd = 25 (2^(1/6) - 3 (1 + 3^-6)^(1/6) + 2), closed form
    idd = 25 * (2 ** (1 / 6) - 3 * (1 + 3**-6) ** (1 / 6) + 2)
    assert float(emodel_r(200.0, 0.0, 0.0, "G.711")) == pytest.approx(93.2 - idd)
    # 1 % random loss on G.711 with PLC: Ie,eff = 95 * 1 / (1 + 25.1)
    assert float(emodel_r(50.0, 0.0, 1.0, "G.711")) == pytest.approx(93.2 - 95 / 26.1)


# ----------------------------------------------------------------- planted facts (one pass)


@pytest.fixture(scope="module")
def last_two_weeks() -> duckdb.DuckDBPyConnection:
    truth = demo_truth(7, ANCHOR, 30)
    sim = DemoSimulator(7, ANCHOR)
    start = _us(truth.experiment.start)
    parts = [sim.window(a, min(a + DAY_US, _us(ANCHOR))) for a in range(start, _us(ANCHOR), DAY_US)]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for name in TABLES:
        con.register(name, pa.concat_tables([p[name] for p in parts]))
    return con


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    return con.execute(sql, params or []).fetchone()


def test_treatment_resolves_three_points_more_and_is_not_faster(last_two_weeks):
    con = last_two_weeks
    diff, n = _one(
        con,
        "SELECT avg((outcome = 'resolved')::INT) FILTER (variant = 'treatment')"
        " - avg((outcome = 'resolved')::INT) FILTER (variant = 'control'), count(*)"
        " FROM calls WHERE experiment_key = 'prompt-v2'",
    )
    se = np.sqrt(2 * 0.25 / (n / 2))
    assert abs(diff - 0.03) < 3.5 * se
    lat = _one(
        con,
        "SELECT median(e2e_ms) FILTER (variant = 'treatment') / median(e2e_ms)"
        " FILTER (variant = 'control') FROM voice_turns WHERE variant IS NOT NULL",
    )[0]
    assert abs(lat - 1.0) < 0.02
    exposures, calls = _one(
        con,
        "SELECT (SELECT count(*) FROM experiment_exposures),"
        " (SELECT count(*) FROM calls WHERE variant IS NOT NULL)",
    )
    assert exposures == calls
    call_id, variant = _one(con, "SELECT call_id, variant FROM calls WHERE variant IS NOT NULL")
    assert experiment_variant(call_id) == variant


def test_bad_release_has_slower_llm_and_more_errors_until_rolled_back(last_two_weeks):
    con = last_two_weeks
    bad = demo_truth(7, ANCHOR, 30).bad_release
    by_release = dict(
        con.execute("SELECT release, median(llm_ttft_ms) FROM voice_turns GROUP BY 1").fetchall()
    )
    others = [v for r, v in by_release.items() if r != bad.release]
    assert by_release[bad.release] > 1.4 * max(others)
    rate = dict(
        con.execute(
            "SELECT release, avg((status_code >= 500)::INT) FROM requests"
            " WHERE route = '/v1/agent/turn' GROUP BY 1"
        ).fetchall()
    )
    assert rate[bad.release] > 5 * rate[bad.previous_release]
    rollback = _one(
        con,
        "SELECT release, finished_at FROM deployments WHERE is_rollback AND release = ?",
        [bad.previous_release],
    )
    assert rollback == (bad.previous_release, bad.rolled_back_at)
    starts = _one(con, "SELECT count(*) FROM app_starts WHERE release = ?", [bad.release])[0]
    assert starts == 2


def test_outage_window_has_pending_then_down_probes(last_two_weeks):
    o = demo_truth(7, ANCHOR, 30).outage
    rows = last_two_weeks.execute(
        "SELECT status, count(*) FROM probe_results WHERE target = ? AND checked_at >= ?"
        " AND checked_at < ? GROUP BY 1",
        [o.target, o.start, o.end],
    ).fetchall()
    assert dict(rows) == {"pending": 2, "down": 23}
    down_elsewhere = _one(
        last_two_weeks,
        "SELECT count(*) FROM probe_results WHERE status = 'down' AND NOT"
        " (target = ? AND checked_at >= ? AND checked_at < ?)",
        [o.target, o.start, o.end],
    )[0]
    assert down_elsewhere == 0


def test_attacks_and_usage_spike_stand_out(last_two_weeks):
    con = last_two_weeks
    t = demo_truth(7, ANCHOR, 30)
    ip, fails, users = _one(
        con,
        "SELECT ip, count(*), count(DISTINCT user_id) FROM auth_events WHERE NOT success"
        " GROUP BY ip ORDER BY 2 DESC LIMIT 1",
    )
    assert ip in (t.brute_force.ip, t.credential_stuffing.ip) and fails >= 60
    bf = _one(
        con,
        "SELECT count(*), count(DISTINCT user_id), max(occurred_at) - min(occurred_at)"
        " FROM auth_events WHERE ip = ? AND NOT success",
        [t.brute_force.ip],
    )
    assert bf[0] == t.brute_force.attempts and bf[1] == 1 and bf[2] < timedelta(minutes=10)
    cs = _one(
        con,
        "SELECT count(DISTINCT user_id), count(*) FILTER (success) FROM auth_events WHERE ip = ?",
        [t.credential_stuffing.ip],
    )
    assert cs == (t.credential_stuffing.accounts, len(t.credential_stuffing.successful_accounts))
    hourly = con.execute(
        "SELECT date_trunc('hour', started_at) h, count(*) n FROM requests WHERE user_id = ?"
        " GROUP BY 1 ORDER BY n DESC",
        [t.api_spike.user_id],
    ).fetchall()
    assert hourly[0][0] >= t.api_spike.start and hourly[0][1] > 20 * hourly[2][1]
    assert (
        _one(con, "SELECT count(*) FROM security_events WHERE event_type = 'rate_limit_exceeded'")[
            0
        ]
        > 50
    )


def test_latency_quality_and_feedback_are_plausible(last_two_weeks):
    con = last_two_weeks
    p50, p95 = _one(
        con, "SELECT quantile_cont(e2e_ms, 0.5), quantile_cont(e2e_ms, 0.95) FROM voice_turns"
    )
    assert 800 <= p50 <= 1300 and 1800 <= p95 <= 3000
    summed = _one(
        con,
        "SELECT avg((e2e_ms < eou_delay_ms + stt_ms + llm_ttft_ms + tts_ttfb_ms)::INT)"
        " FROM voice_turns WHERE e2e_ms IS NOT NULL",
    )[0]
    assert summed > 0.9  # the stages overlap: e2e is not their sum
    assert 4.0 <= _one(con, "SELECT median(mos_reported) FROM voice_quality")[0] <= 4.35
    # the odds of a negative rating rise with latency and interruptions
    neg = dict(
        con.execute(
            "SELECT v.slow, avg((f.rating <= 2)::INT) FROM feedback f JOIN (SELECT call_id,"
            " avg(e2e_ms) > 1500 slow FROM voice_turns GROUP BY 1) v USING (call_id) GROUP BY 1"
        ).fetchall()
    )
    assert neg[True] > 1.5 * neg[False]
    by_int = dict(
        con.execute(
            "SELECT c.interruptions >= 2, avg((f.rating <= 2)::INT) FROM feedback f"
            " JOIN calls c USING (call_id) GROUP BY 1"
        ).fetchall()
    )
    assert by_int[True] > by_int[False]
    repeat = _one(con, "SELECT avg(n) FROM (SELECT count(*) n FROM calls GROUP BY caller_id)")[0]
    assert repeat > 3


def test_feedback_logistic_recovers_the_planted_coefficients(last_two_weeks):
    import statsmodels.api as sm

    df = last_two_weeks.execute(
        "SELECT (f.rating <= 2)::INT neg, v.mean_e2e / 1000 - 1 x, c.interruptions n"
        " FROM feedback f JOIN calls c USING (call_id)"
        " JOIN (SELECT call_id, avg(e2e_ms) mean_e2e FROM voice_turns GROUP BY 1) v USING (call_id)"
    ).df()
    fit = sm.Logit(df["neg"], sm.add_constant(df[["x", "n"]])).fit(disp=0)
    model = demo_truth(7, ANCHOR, 30).feedback
    assert abs(fit.params["x"] - model.per_e2e_s) < 4 * fit.bse["x"]
    assert abs(fit.params["n"] - model.per_interruption) < 4 * fit.bse["n"]
    assert abs(fit.params["const"] - model.intercept) < 4 * fit.bse["const"]


def test_every_episode_lies_inside_the_default_history():
    t = demo_truth(7, ANCHOR, 30)
    times = [
        t.experiment.start,
        t.bad_release.deployed_at,
        t.bad_release.rolled_back_at,
        t.outage.start,
        t.outage.end,
        t.brute_force.start,
        t.credential_stuffing.start,
        t.api_spike.end,
    ]
    assert all(t.history_start <= x < t.anchor for x in times)
    assert t.release_at(t.bad_release.deployed_at) == t.bad_release.release
    assert t.release_at(t.bad_release.rolled_back_at) == t.bad_release.previous_release
    assert [d.status for d in t.deployments_between(t.history_start, t.anchor)].count("FAILED") == 1
