"""Row validation: turn a source's records into a typed Arrow table plus rejected rows.

Two paths with the same rules. Lists of dicts (REST pages, spool lines) are checked row by row;
Arrow tables (the demo, Postgres COPY) are checked column-wise with pyarrow.compute, which keeps a
30-day backfill inside its time budget. Rules: required and key columns present; values of the
column's type; timestamps carry a time zone and are not in the future; strings within their
length limit. Anything else is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from collectors.schema import Column, Table

# A source's clock may run a little ahead of ours; beyond this a timestamp is "in the future".
FUTURE_TOLERANCE = timedelta(minutes=5)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
}


@dataclass
class Rejected:
    row: Mapping[str, Any]
    reason: str


@dataclass
class Validated:
    table: pa.Table  # exactly the warehouse columns, timestamps naive UTC
    rejected: list[Rejected]


def arrow_schema(spec: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in spec.columns])


def _must(spec: Table, column: Column) -> bool:
    return column.required or column.name in spec.key


# ---- row by row -------------------------------------------------------------------------------


def _timestamp(value: Any, now: datetime) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"is a {type(value).__name__}, not a timestamp")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("is a naive timestamp (no time zone)")
    utc = value.astimezone(UTC)
    if utc > now + FUTURE_TOLERANCE:
        raise ValueError(f"is in the future ({utc.isoformat()})")
    return utc.replace(tzinfo=None)


def _coerce(column: Column, value: Any, now: datetime) -> Any:
    kind = column.type
    if kind == "VARCHAR":
        if isinstance(value, bool):
            raise ValueError("is a boolean, not text")
        if isinstance(value, int):
            value = str(value)
        elif isinstance(value, dict | list):
            value = json.dumps(value, separators=(",", ":"), default=str)
        elif not isinstance(value, str):
            raise ValueError(f"is a {type(value).__name__}, not text")
        if column.max_length is not None and len(value) > column.max_length:
            raise ValueError(f"is longer than {column.max_length} characters ({len(value)})")
        return value
    if kind in ("INTEGER", "BIGINT"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"is a {type(value).__name__}, not an integer")
        low, high = INT32 if kind == "INTEGER" else INT64
        if not low <= value <= high:
            raise ValueError(f"is out of range for a {32 if kind == 'INTEGER' else 64}-bit integer")
        return value
    if kind == "DOUBLE":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"is a {type(value).__name__}, not a number")
        try:
            value = float(value)  # an int beyond a double's range raises OverflowError
        except OverflowError:
            raise ValueError("is too large for a number column") from None
        if math.isinf(value):
            raise ValueError("is not a finite number")
        return value
    if kind == "BOOLEAN":
        if not isinstance(value, bool):
            raise ValueError(f"is a {type(value).__name__}, not true/false")
        return value
    if kind == "TIMESTAMP":
        return _timestamp(value, now)
    raise AssertionError(f"unhandled column type {kind}")


def _validate_rows(spec: Table, rows: Sequence[Mapping[str, Any]], now: datetime) -> Validated:
    columns: dict[str, list[Any]] = {c.name: [] for c in spec.columns}
    rejected: list[Rejected] = []
    for row in rows:
        if not isinstance(row, Mapping):
            rejected.append(Rejected({"value": repr(row)[:200]}, "row is not an object"))
            continue
        problems: list[str] = []
        clean: dict[str, Any] = {}
        for column in spec.columns:
            value = row.get(column.name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                if _must(spec, column):
                    problems.append(f"{column.name} is missing")
                clean[column.name] = None
                continue
            try:
                clean[column.name] = _coerce(column, value, now)
            except ValueError as exc:
                problems.append(f"{column.name} {exc}")
        if problems:
            rejected.append(Rejected(row, "; ".join(problems)))
            continue
        for name, value in clean.items():
            columns[name].append(value)
    table = pa.table({c.name: pa.array(columns[c.name], ARROW_TYPES[c.type]) for c in spec.columns})
    return Validated(table, rejected)


# ---- column-wise ------------------------------------------------------------------------------


def _arrow_column(spec: Table, column: Column, data: pa.Table, now: datetime, problems: list):
    """Return the column cast to its warehouse type, appending (mask, reason) problems."""
    target = ARROW_TYPES[column.type]
    if column.name not in data.column_names:
        if _must(spec, column):
            problems.append((pa.array([True] * data.num_rows), f"{column.name} is missing"))
        return pa.nulls(data.num_rows, target)
    values = data.column(column.name)
    if _must(spec, column):
        problems.append((pc.is_null(values), f"{column.name} is missing"))
    if column.type == "TIMESTAMP":
        if not pa.types.is_timestamp(values.type) or values.type.tz is None:
            raise TypeError(f"{column.name} is not a time zone-aware timestamp column")
        values = pc.cast(values, pa.timestamp("us", tz="UTC"))
        limit = pa.scalar(now + FUTURE_TOLERANCE, pa.timestamp("us", tz="UTC"))
        future = pc.fill_null(pc.greater(values, limit), False)
        problems.append((future, f"{column.name} is in the future"))
        return pc.cast(values, pa.timestamp("us", tz="UTC")).cast(pa.timestamp("us"))
    values = pc.cast(values, target)  # raises on a lossy cast: the caller falls back to rows
    if column.type == "VARCHAR" and column.max_length is not None:
        too_long = pc.fill_null(pc.greater(pc.utf8_length(values), column.max_length), False)
        problems.append((too_long, f"{column.name} is longer than {column.max_length} characters"))
    if column.type == "DOUBLE":
        # NaN means "not measured" (as in pandas): store NULL. Infinity is a broken value.
        values = pc.if_else(pc.is_nan(values), pa.scalar(None, pa.float64()), values)
        bad = pc.fill_null(pc.is_inf(values), False)
        problems.append((bad, f"{column.name} is not a finite number"))
    return values


def _validate_arrow(spec: Table, data: pa.Table, now: datetime) -> Validated:
    problems: list[tuple[pa.Array, str]] = []
    try:
        arrays = [_arrow_column(spec, c, data, now, problems) for c in spec.columns]
    except (TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A column of the wrong type: judge it row by row so only the bad rows are rejected.
        return _validate_rows(spec, data.to_pylist(), now)
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(spec))
    if not problems:
        return Validated(table, [])
    bad = problems[0][0]
    for mask, _ in problems[1:]:
        bad = pc.or_(bad, mask)
    if not pc.any(bad).as_py():
        return Validated(table, [])
    rejected_rows = data.filter(bad).to_pylist()
    masks = [(m.filter(bad).to_pylist(), reason) for m, reason in problems]
    rejected = []
    for i, row in enumerate(rejected_rows):
        reasons = [reason for flags, reason in masks if flags[i]]
        rejected.append(Rejected(row, "; ".join(reasons)))
    return Validated(table.filter(pc.invert(bad)), rejected)


def validate(spec: Table, records: Any, now: datetime | None = None) -> Validated:
    """Split `records` into valid rows (as a typed Arrow table) and rejected rows with reasons."""
    now = now or datetime.now(UTC)
    if isinstance(records, pa.RecordBatch):
        records = pa.Table.from_batches([records])
    if isinstance(records, pa.Table):
        return _validate_arrow(spec, records, now)
    if hasattr(records, "to_dict") and hasattr(records, "columns"):  # a pandas DataFrame
        records = records.to_dict("records")
    return _validate_rows(spec, list(records), now)
