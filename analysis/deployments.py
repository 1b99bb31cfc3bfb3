"""Deployments: the table of releases shipped in a window, the markers every time chart shows,
and the hourly marks the Anomalies page labels episodes with. One query serves all three."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd


def deployments(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, newest_first: bool = False
) -> pd.DataFrame:
    """Deployments created in [start, end), oldest first (newest first for tables), with how
    long each took to finish (build_s) and whether it rolled back."""
    order = "DESC" if newest_first else "ASC"  # one of two fixed words
    return con.execute(
        f"""
        SELECT created_at, finished_at,
               date_diff('second', created_at, finished_at) AS build_s,
               release, status, coalesce(is_rollback, false) AS is_rollback,
               service, environment, left(commit_sha, 10) AS commit, message, deployment_id
        FROM deployments WHERE created_at >= ? AND created_at < ?
        ORDER BY created_at {order}
        """,  # noqa: S608 - no input in the text
        [start, end],
    ).df()


def deployment_marks(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> list[tuple[datetime, str, str]]:
    """Successful deployments in [start, end) as (hour, release, deployment id) for
    analysis.anomalies.label_with_deployments on an hourly series.

    The time is floored to the hour: an hourly point covers its whole hour, so a deploy at
    14:05 precedes an episode whose first point is the 14:00 hour.
    """
    frame = deployments(con, start, end)
    ok = frame["status"].fillna("SUCCESS").str.upper() == "SUCCESS"
    hours = frame["created_at"].dt.floor("h")
    return [
        (hour.to_pydatetime(), release, deployment)
        for hour, release, deployment in zip(
            hours[ok], frame["release"][ok], frame["deployment_id"][ok], strict=True
        )
    ]
