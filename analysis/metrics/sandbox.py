"""Metric SQL runs read-only over the published snapshot and nothing else.

The snapshot's DuckDB is locked down (`lock_down`: no file, network or extension access beyond
reading the snapshot's own folder, configuration locked), and a definition is checked when the
configuration is loaded (`check_metric_sql`): it may read only the snapshot's tables, through
no table function.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import duckdb

from analysis.metrics.definition import Metric, MetricConfigError

# DuckDB 2.0's settings for running untrusted SQL ("Securing DuckDB"): extensions are neither
# installed nor loaded on demand (a query naming httpfs or spatial functions would fetch them),
# no file system or network access except reading `allowed_directories`, and the configuration
# locked so that SQL cannot set any of it back.
_LOCKED = (
    "SET autoinstall_known_extensions = false",
    "SET autoload_known_extensions = false",
    "SET allow_community_extensions = false",
    "SET enable_external_access = false",
    "SET lock_configuration = true",
)


def lock_down(con: duckdb.DuckDBPyConnection, readable: Iterable[str | Path] = ()) -> None:
    """Let `con` (and its cursors) read files only under the `readable` folders, and nothing
    else outside itself, for good. Views created before keep reading their files there."""
    folders = ", ".join("'" + str(f).rstrip("/").replace("'", "''") + "/'" for f in readable)
    con.execute(f"SET allowed_directories = [{folders}]")
    for statement in _LOCKED:
        con.execute(statement)


def _read_by(node: Any, found: dict[str, set[str]]) -> None:
    """The tables, table functions and CTE names of a json_serialize_sql tree."""
    if isinstance(node, dict):
        if node.get("type") == "TABLE_FUNCTION":
            found["functions"].add(node["function"]["function_name"])
        elif node.get("type") == "BASE_TABLE":  # a snapshot table is main.<name> of memory
            path = [node.get("catalog_name"), node.get("schema_name"), node["table_name"]]
            if path[0] in ("", "memory") and path[1] in ("", "main"):
                path = path[2:]
            found["tables"].add(".".join(p for p in path if p))
        for entry in (node.get("cte_map") or {}).get("map", []):
            found["ctes"].add(entry["key"])
        for value in node.values():
            _read_by(value, found)
    elif isinstance(node, list):
        for value in node:
            _read_by(value, found)


def check_metric_sql(con: duckdb.DuckDBPyConnection, metric: Metric) -> None:
    """Refuse SQL that reads anything but the snapshot's tables, or does not return the metric's
    columns. `con` is a locked-down snapshot (collectors.snapshot.open_snapshot); an empty one
    is enough. Raises MetricConfigError with one sentence."""
    where = f"metric {metric.name!r}: key 'sql'"
    only = "metric SQL may read only the snapshot's tables, such as calls, voice_turns and feedback"
    row = con.execute("SELECT json_serialize_sql(?)", [metric.sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise MetricConfigError(f"{where} is not valid SQL: {tree.get('error_message', '')}")
    found: dict[str, set[str]] = {"functions": set(), "tables": set(), "ctes": set()}
    _read_by(tree, found)
    if found["functions"]:
        raise MetricConfigError(f"{where} calls {', '.join(sorted(found['functions']))}; {only}")
    snapshot = {
        name
        for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
        ).fetchall()
    }
    outside = sorted(found["tables"] - snapshot - found["ctes"])
    if outside:
        raise MetricConfigError(f"{where} reads {', '.join(outside)}; {only}")
    try:
        columns = {row[0] for row in con.execute(f"DESCRIBE {metric.sql}").fetchall()}
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0].rstrip(".!")
        raise MetricConfigError(f"{where} does not run on the snapshot ({reason})") from None
    needed = ("call_id", "ts", *metric.value_columns)
    if not set(needed) <= columns:
        raise MetricConfigError(
            f"{where} must return columns {', '.join(needed[:-1])} and {needed[-1]}"
        )
