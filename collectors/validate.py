"""Row validation: turn a source's records into a typed Arrow table plus rejected rows.

Two paths with the same rules. Lists of dicts (REST pages, spool lines) are checked row by row;
Arrow tables (the demo, Postgres COPY) are checked column-wise with pyarrow.compute, which keeps a
30-day backfill inside its time budget. Rules: required and key columns present; values of the
column's type; numbers finite (NaN is a broken value: a source that did not measure sends null);
numbers within the column's bounds and text within its allowed set (collectors/schema.py);
timestamps carry a time zone and lie between EARLIEST and a little past now; strings within their
length limit. Each broken value rejects only its row, with a reason naming the column and the
value. Anything else is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from collectors.schema import Column, Table

# A source's clock may run a little ahead of ours; beyond this a timestamp is "in the future".
FUTURE_TOLERANCE = timedelta(minutes=5)
# Earlier timestamps are placeholders or broken clocks (the Unix epoch, 0001-01-01, a device
# that lost its time), not events of a service monitored today.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
# A reason shows at most this much of the offending value (the row itself is in rejects).
SHOWN_VALUE_CHARS = 60
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
UTC_US = pa.timestamp("us", tz="UTC")
# The usual form of a timestamp given as text, which Arrow parses column-wise; other text goes
# through Python's parser one value at a time (the row path's rules and reasons).
AWARE_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:\d{2}|Z)$"


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


def shown(value: Any) -> str:
    """A value as a reason shows it: repr-like (quoted text, nan, inf), at most 60 characters."""
    if isinstance(value, datetime):
        text = repr(value.isoformat())
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        text = f"<an integer of {value.bit_length()} bits>"  # repr would be huge (or raise)
    else:
        text = repr(value)
    if len(text) > SHOWN_VALUE_CHARS:
        text = text[: SHOWN_VALUE_CHARS - 1] + "…"
    return text


def _reason(name: str, problem: str, value: Any) -> str:
    return f"{name} {problem}" if value is None else f"{name} {problem}: {shown(value)}"


def _bounds_text(column: Column) -> str:
    if column.low is not None and column.high is not None:
        return f"is outside {column.low:g}..{column.high:g}"
    if column.low is not None:
        return f"is below {column.low:g}"
    return f"is above {column.high:g}"


def _allowed_text(column: Column) -> str:
    return f"is not one of {'|'.join(column.allowed or ())}"


# ---- row by row -------------------------------------------------------------------------------


def _parse_timestamp(value: Any) -> datetime:
    """An aware UTC datetime from a datetime or ISO 8601 text, or ValueError with the problem."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("is not an ISO 8601 timestamp") from None
    if not isinstance(value, datetime):
        raise ValueError(f"is a {type(value).__name__}, not a timestamp")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("is a naive timestamp (no time zone)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01 with a positive offset
        raise ValueError(f"is before {EARLIEST.date()}") from None


def _timestamp(value: Any, now: datetime) -> datetime:
    utc = _parse_timestamp(value)
    if utc > now + FUTURE_TOLERANCE:
        raise ValueError("is in the future")
    if utc < EARLIEST:
        raise ValueError(f"is before {EARLIEST.date()}")
    return utc.replace(tzinfo=None)


def _in_bounds(column: Column, value: float) -> None:
    if (column.low is not None and value < column.low) or (
        column.high is not None and value > column.high
    ):
        raise ValueError(_bounds_text(column))


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
        if column.allowed is not None and value not in column.allowed:
            raise ValueError(_allowed_text(column))
        return value
    if kind in ("INTEGER", "BIGINT"):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"is a {type(value).__name__}, not an integer")
        low, high = INT32 if kind == "INTEGER" else INT64
        if not low <= value <= high:
            raise ValueError(f"is out of range for a {32 if kind == 'INTEGER' else 64}-bit integer")
        _in_bounds(column, value)
        return value
    if kind == "DOUBLE":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"is a {type(value).__name__}, not a number")
        try:
            value = float(value)  # an int beyond a double's range raises OverflowError
        except OverflowError:
            raise ValueError("is too large for a number column") from None
        if not math.isfinite(value):
            raise ValueError("is not a finite number")
        _in_bounds(column, value)
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
            if value is None:  # NaN is not "missing": it is a broken number, rejected below
                if _must(spec, column):
                    problems.append(f"{column.name} is missing")
                clean[column.name] = None
                continue
            try:
                clean[column.name] = _coerce(column, value, now)
            except ValueError as exc:
                problems.append(_reason(column.name, str(exc), value))
        if problems:
            rejected.append(Rejected(row, "; ".join(problems)))
            continue
        for name, value in clean.items():
            columns[name].append(value)
    table = pa.table({c.name: pa.array(columns[c.name], ARROW_TYPES[c.type]) for c in spec.columns})
    return Validated(table, rejected)


# ---- column-wise ------------------------------------------------------------------------------

# (rows flagged, column name, problem); the reason adds each flagged row's own value.
Problem = tuple[pa.Array, str, str]


def _flag(mask: pa.Array) -> pa.Array:
    return pc.fill_null(mask, False)


def _text_timestamps(values: pa.ChunkedArray, name: str, problems: list[Problem]) -> pa.Array:
    """Timestamps given as text (e.g. Postgres values Arrow's CSV reader could not read, such as
    'infinity'), as aware UTC: the usual form parsed column-wise, the rest one by one."""
    values = values.combine_chunks()
    usual = _flag(pc.match_substring_regex(values, AWARE_ISO))
    parsed = pc.cast(pc.if_else(usual, values, pa.scalar(None, pa.string())), UTC_US)
    others = pc.indices_nonzero(pc.and_(pc.is_valid(values), pc.invert(usual))).to_numpy()
    fixed: dict[int, datetime] = {}
    failed: dict[str, list[int]] = {}
    for i, text in zip(others, pc.take(values, others).to_pylist(), strict=True):
        try:
            fixed[int(i)] = _parse_timestamp(text)
        except ValueError as exc:
            failed.setdefault(str(exc), []).append(int(i))
    if fixed:
        mask = np.zeros(len(values), dtype=bool)
        mask[list(fixed)] = True  # replace_with_mask fills masked slots in index order
        parsed = pc.replace_with_mask(
            parsed, pa.array(mask), pa.array(list(fixed.values()), UTC_US)
        )
    for problem, rows in failed.items():
        mask = np.zeros(len(values), dtype=bool)
        mask[rows] = True
        problems.append((pa.array(mask), name, problem))
    return parsed


def _arrow_column(
    spec: Table, column: Column, data: pa.Table, now: datetime, problems: list[Problem]
) -> pa.Array:
    """Return the column cast to its warehouse type, appending (mask, column, problem)s."""
    name = column.name
    target = ARROW_TYPES[column.type]
    if name not in data.column_names:
        if _must(spec, column):
            problems.append((pa.array([True] * data.num_rows), name, "is missing"))
        return pa.nulls(data.num_rows, target)
    values = data.column(name)
    if _must(spec, column):
        problems.append((pc.is_null(values), name, "is missing"))
    if column.type == "TIMESTAMP":
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = _text_timestamps(values, name, problems)
        elif not pa.types.is_timestamp(values.type) or values.type.tz is None:
            raise TypeError(f"{name} is not a time zone-aware timestamp column")  # -> rows
        values = pc.cast(values, UTC_US)
        late = pa.scalar(now + FUTURE_TOLERANCE, UTC_US)
        problems.append((_flag(pc.greater(values, late)), name, "is in the future"))
        early = pa.scalar(EARLIEST, UTC_US)
        problems.append((_flag(pc.less(values, early)), name, f"is before {EARLIEST.date()}"))
        return values.cast(pa.timestamp("us"))
    if column.type != "VARCHAR" and pa.types.is_string(values.type):
        raise TypeError(f"{name} is text, not {column.type}")  # as on rows: text is no number
    values = pc.cast(values, target)  # raises on a lossy cast: the caller falls back to rows
    if column.type == "VARCHAR":
        if column.max_length is not None:
            too_long = _flag(pc.greater(pc.utf8_length(values), column.max_length))
            problems.append((too_long, name, f"is longer than {column.max_length} characters"))
        if column.allowed is not None:
            known = pc.is_in(values, value_set=pa.array(column.allowed, pa.string()))
            problems.append((_flag(pc.and_(pc.is_valid(values), pc.invert(known))), name,
                             _allowed_text(column)))  # fmt: skip
    finite = None
    if column.type == "DOUBLE":
        finite = _flag(pc.is_finite(values))
        problems.append((_flag(pc.and_(pc.is_valid(values), pc.invert(finite))), name,
                         "is not a finite number"))  # fmt: skip
    outside = []
    if column.low is not None:
        outside.append(_flag(pc.less(values, column.low)))
    if column.high is not None:
        outside.append(_flag(pc.greater(values, column.high)))
    if outside:
        out = outside[0] if len(outside) == 1 else pc.or_(*outside)
        if finite is not None:  # a non-finite number already has its reason
            out = pc.and_(out, finite)
        problems.append((out, name, _bounds_text(column)))
    return values


def _validate_arrow(spec: Table, data: pa.Table, now: datetime) -> Validated:
    problems: list[Problem] = []
    try:
        arrays = [_arrow_column(spec, c, data, now, problems) for c in spec.columns]
    except (TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A column of the wrong type: judge it row by row so only the bad rows are rejected.
        return _validate_rows(spec, data.to_pylist(), now)
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(spec))
    if not problems:
        return Validated(table, [])
    bad = problems[0][0]
    for mask, _, _ in problems[1:]:
        bad = pc.or_(bad, mask)
    if not pc.any(bad).as_py():
        return Validated(table, [])
    rejected_rows = data.filter(bad).to_pylist()
    flagged = [(m.filter(bad).to_pylist(), name, problem) for m, name, problem in problems]
    rejected = []
    for i, row in enumerate(rejected_rows):
        reasons = [_reason(name, problem, row.get(name)) for flags, name, problem in flagged
                   if flags[i]]  # fmt: skip
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
        # pandas cannot hold a null in a float column: there NaN (and NaT) mean "missing".
        records = records.astype(object).where(records.notna(), None).to_dict("records")
    return _validate_rows(spec, list(records), now)
