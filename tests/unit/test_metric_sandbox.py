"""User metric SQL ([[metrics]]) runs read-only over the snapshot's tables: the snapshot's DuckDB
cannot read files, reach the network or install extensions, and a definition that tries is
refused when the configuration is loaded, with one sentence naming it."""

from __future__ import annotations

import duckdb
import pytest

from collectors.config import ConfigError, load_config
from collectors.snapshot import open_snapshot

GOOD = "SELECT call_id, started_at AS ts, CASE WHEN duration_s > 300 THEN 1.0 ELSE 0.0 END AS value FROM calls"  # noqa: E501


def config_with_metric(tmp_path, sql: str):
    path = tmp_path / "workbench.toml"
    path.write_text(
        "[[metrics]]\n"
        'name = "long_calls"\ntype = "proportion"\nlevel = "call"\n'
        f"sql = '''{sql}'''\n"  # a TOML literal string: the SQL's quotes stay as they are
    )
    return load_config(path, env={})


def test_a_metric_over_the_snapshots_tables_loads(tmp_path):
    assert config_with_metric(tmp_path, GOOD).metrics[0]["name"] == "long_calls"


@pytest.mark.parametrize(
    ("sql", "named"),
    [
        ("SELECT call_id, started_at AS ts, 1.0 AS value FROM calls, read_text('/etc/passwd')",
         "read_text"),
        ("SELECT call_id, started_at AS ts, 1.0 AS value "
         "FROM read_json('https://evil.example/x.json')", "read_json"),
        ("SELECT c.call_id, c.started_at AS ts, 1.0 AS value FROM calls c, duckdb_settings() s",
         "duckdb_settings"),
        ("SELECT call_id, started_at AS ts, 1.0 AS value FROM passwords", "passwords"),
        ("SELECT call_id, started_at AS ts, 1.0 AS value FROM calls "
         "WHERE call_id IN (SELECT content FROM read_blob('/etc/shadow'))", "read_blob"),
    ],
)  # fmt: skip
def test_a_metric_reaching_outside_the_snapshot_is_refused_in_one_sentence(tmp_path, sql, named):
    with pytest.raises(ConfigError) as refused:
        config_with_metric(tmp_path, sql)
    message = str(refused.value)
    assert "metrics[0]" in message and "'sql'" in message and named in message
    assert "Traceback" not in message and message.count(".") <= 3


def test_a_metric_without_the_required_columns_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="call_id, ts and value"):
        config_with_metric(tmp_path, "SELECT call_id, started_at FROM calls")


def test_the_snapshot_cannot_read_files_reach_the_network_or_load_extensions(tmp_path):
    con = open_snapshot(tmp_path / "serving").con
    assert con.execute("SELECT count(*) FROM calls").fetchone() == (0,)  # its tables work
    for statement in (
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('https://evil.example/x.csv')",
        "INSTALL httpfs",
        "LOAD httpfs",
        "COPY calls TO '/tmp/out.csv'",
        "ATTACH '/tmp/other.duckdb'",
        "SET enable_external_access = true",
    ):
        with pytest.raises(duckdb.Error):
            con.execute(statement)
