"""Supabase tables over the REST API (PostgREST) with supabase-py, paged by keyset.

Each table is read in (cursor, id) order from the last committed watermark, one page per
Batch, so the engine commits page by page and a retry resumes after the last committed page.
Keyset paging never drifts while rows are being inserted (offsets do), and a page shorter than
asked does not end the read: the project's "max rows" may be below the page size
(reference/voice_observability.md section 4).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from collectors.schema import TABLES
from collectors.sources.base import Batch, SourceConfigError, TransientSourceError

log = logging.getLogger(__name__)

# Tables the monitoring SDK writes to Supabase: same names and columns as the warehouse, plus
# `id bigint generated always as identity` and `created_at timestamptz default now()`.
SDK_TABLES: tuple[str, ...] = (
    "requests",
    "errors",
    "db_queries",
    "voice_turns",
    "calls",
    "voice_quality",
    "feedback",
    "feature_usage",
    "auth_events",
    "security_events",
    "resource_samples",
    "experiment_exposures",
    "app_starts",
)

DEFAULT_PAGE_SIZE = 1000  # Supabase's default "max rows"; larger pages would come back short
# A row's created_at/updated_at is its transaction's start, not its commit: a row committed
# after a collect passed its time would never be read. Each read starts this far before the
# watermark. Two minutes covers PostgREST's requests (one short transaction each) with a wide
# margin; rows read twice change nothing, since the warehouse upserts by natural key.
DEFAULT_OVERLAP_S = 120.0
# SDK tables are read by when a row last changed (the migration's trigger sets it), so a call
# that ends after it was first read is read again.
SDK_CURSOR = "updated_at"
CHANGES_MIGRATION = "supabase/migrations/20261202000000_rows_that_change.sql"


@dataclass(frozen=True)
class TableMapping:
    """How one Supabase table maps onto one warehouse table.

    `columns` maps warehouse column -> source column (unlisted columns keep their name);
    `scale` multiplies numeric source values on ingest (e.g. 0.001 for a `_ms` column that
    lands in a `_s` column). `explicit` marks tables the user named, which must exist.
    """

    source_table: str
    target: str
    columns: Mapping[str, str] = field(default_factory=dict)
    scale: Mapping[str, float] = field(default_factory=dict)
    cursor_column: str = "created_at"
    id_column: str = "id"
    schema: str = "public"
    explicit: bool = False

    @property
    def stream(self) -> str:
        return self.source_table

    def source_column(self, warehouse_column: str) -> str:
        return self.columns.get(warehouse_column, warehouse_column)

    def source_columns(self) -> list[str]:
        """Every source column to read: the mapped ones, then the keyset columns."""
        spec = TABLES[self.target]
        wanted = [self.source_column(c) for c in spec.column_names]
        for extra in (self.cursor_column, self.id_column):
            if extra not in wanted:
                wanted.append(extra)
        return list(dict.fromkeys(wanted))


def sdk_mappings(tables: tuple[str, ...] | list[str] = SDK_TABLES) -> list[TableMapping]:
    return [TableMapping(t, t, cursor_column=SDK_CURSOR) for t in tables]


def missing_cursor_error(mapping: TableMapping, column: str, where: str) -> SourceConfigError:
    """One sentence for a table without the column it is paged on."""
    if not mapping.explicit and column == SDK_CURSOR:
        return SourceConfigError(
            f"{where} table {mapping.source_table} has no {SDK_CURSOR} column: apply "
            f"{CHANGES_MIGRATION} to the Supabase project (supabase db push)."
        )
    return SourceConfigError(
        f"{where} table {mapping.source_table} has no column {column} to page on: set "
        "cursor_column/id_column in its [[supabase.mappings]] entry."
    )


# ---- watermarks: the last committed (cursor, id), as JSON ----------------------------------


@dataclass(frozen=True, order=True)
class Keyset:
    ts: datetime  # aware UTC
    id: Any  # int for identity columns; kept as the source gave it otherwise

    def to_json(self) -> str:
        return json.dumps({"ts": self.ts.isoformat(), "id": self.id})


def parse_keyset(value: str | None) -> Keyset | None:
    if not value:
        return None
    try:
        data = json.loads(value)
        return Keyset(as_utc(data["ts"]), data["id"])
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable watermark %r; reading the table from the start", value)
        return None


def as_utc(value: str | datetime) -> datetime:
    """An aware UTC datetime; naive values (timestamp without time zone) are taken as UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def later(a: Keyset | None, b: Keyset) -> Keyset:
    """The later of a watermark (None: none yet) and a batch's last key."""
    return b if a is None else max(a, b)


# ---- HTTP faults -> the engine's two error kinds -----------------------------------------


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date (RFC 9110 section 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def raise_for_source(response: httpx.Response, *, service: str, key_setting: str) -> None:
    """Turn an HTTP failure into SourceConfigError (user must fix) or TransientSourceError."""
    status = response.status_code
    if status in (401, 403):
        raise SourceConfigError(
            f"{service} refused the request with HTTP {status}: check {key_setting} "
            "(it must be a valid key for this project with read access)."
        )
    if status == 429:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientSourceError(f"{service} is rate limiting (HTTP 429)", retry_after_s=wait)
    if status >= 500:
        wait = retry_after_seconds(response.headers.get("Retry-After"))
        raise TransientSourceError(f"{service} answered HTTP {status}", retry_after_s=wait)


def _hook(response: httpx.Response) -> None:
    raise_for_source(response, service="Supabase", key_setting="SUPABASE_API_KEY")


# ---- the source ------------------------------------------------------------------------------


class SupabaseRestSource:
    """Reads SDK tables and mapped user tables through supabase-py."""

    # Reading only: the engine may fetch the next page while it commits this one.
    read_ahead = True

    def __init__(
        self,
        url: str,
        key: str,
        mappings: list[TableMapping] | None = None,
        *,
        name: str = "supabase",
        page_size: int = DEFAULT_PAGE_SIZE,
        overlap_s: float = DEFAULT_OVERLAP_S,
        timeout_s: float = 30.0,
        count: str | None = "exact",
        verify: bool | str = True,
    ):
        if not url:
            raise SourceConfigError("SUPABASE_URL is not set: give the project URL.")
        if not key:
            raise SourceConfigError("SUPABASE_API_KEY is not set: give the project's API key.")
        self.name = name
        self.url = url.rstrip("/")
        self._key = key
        self.mappings = mappings if mappings is not None else sdk_mappings()
        self.page_size = page_size
        self.overlap = timedelta(seconds=overlap_s)
        self.timeout_s = timeout_s
        self.count = count
        self.verify = verify
        self._client: Any = None

    def __repr__(self) -> str:  # never show the key
        return f"SupabaseRestSource(name={self.name!r}, url={self.url!r}, key='***')"

    def client(self) -> Any:
        if self._client is None:
            from supabase import ClientOptions, SupabaseException, create_client

            http = httpx.Client(
                timeout=self.timeout_s,
                verify=self.verify,
                follow_redirects=True,
                event_hooks={"response": [_hook]},
            )
            options = ClientOptions(
                httpx_client=http,
                postgrest_client_timeout=self.timeout_s,
                postgrest_client_retry=False,  # the engine owns retries and backoff
                auto_refresh_token=False,
                persist_session=False,
            )
            try:
                self._client = create_client(self.url, self._key, options=options)
            except SupabaseException as exc:
                raise SourceConfigError(
                    f"SUPABASE_URL or SUPABASE_API_KEY was not accepted: {exc}"
                ) from None
        return self._client

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        for mapping in self.mappings:
            yield from self.fetch_table(mapping, parse_keyset(watermarks.get(mapping.stream)))

    def _columns(self, mapping: TableMapping) -> str | None:
        """The select list: '*' for SDK tables; for a user's table only the mapped columns it
        has (found from one row), so wide columns such as transcripts are never transferred.
        None when the table is empty."""
        if not mapping.explicit:
            return "*"
        probe = self.client().schema(mapping.schema).table(mapping.source_table).select("*")
        rows = self._execute(probe.limit(1), mapping).data or []
        if not rows:
            return None
        for needed in (mapping.cursor_column, mapping.id_column):
            if needed not in rows[0]:
                raise missing_cursor_error(mapping, needed, "Supabase")
        return ",".join(c for c in mapping.source_columns() if c in rows[0])

    def _query(
        self, mapping: TableMapping, select: str, lower: Keyset | None, inclusive: bool, count: bool
    ) -> Any:  # postgrest's request builder (the client is Any: supabase is imported lazily)
        q = (
            self.client()
            .schema(mapping.schema)
            .table(mapping.source_table)
            .select(select, count=self.count if count else None)
        )
        c, i = mapping.cursor_column, mapping.id_column
        if lower is not None:
            ts = lower.ts.isoformat()
            if inclusive:
                q = q.gte(c, ts)
            else:
                # (c, id) > (ts, id) as PostgREST logic; values quoted for ':' and '.'
                q = q.or_(f'{c}.gt."{ts}",and({c}.eq."{ts}",{i}.gt.{json.dumps(lower.id)})')
        return q.order(c).order(i).limit(self.page_size)

    def _execute(self, query: Any, mapping: TableMapping) -> Any:
        from postgrest.exceptions import APIError

        try:
            return query.execute()
        except httpx.TimeoutException as exc:
            raise TransientSourceError(
                f"Supabase timed out reading {mapping.source_table}"
            ) from exc
        except httpx.TransportError as exc:
            raise TransientSourceError(
                f"Supabase connection failed reading {mapping.source_table}: {exc}"
            ) from exc
        except APIError as exc:
            code = str(exc.code or "")
            if code in ("PGRST205", "42P01", "PGRST106"):
                raise _MissingTable(mapping.source_table) from None
            if code in ("42703", "PGRST204", "PGRST100"):
                if not mapping.explicit and SDK_CURSOR in str(exc.message):
                    raise missing_cursor_error(mapping, SDK_CURSOR, "Supabase") from None
                raise SourceConfigError(
                    f"Supabase table {mapping.source_table} lacks a column the mapping names "
                    f"({exc.message}): fix the column names under its [[supabase.mappings]] entry."
                ) from None
            raise TransientSourceError(
                f"Supabase error reading {mapping.source_table}: {exc.message}"
            ) from exc

    def fetch_table(self, mapping: TableMapping, committed: Keyset | None) -> Iterator[Batch]:
        lower, inclusive = committed, False
        if committed is not None and self.overlap:
            # Re-read a window before the watermark to catch rows committed late.
            lower, inclusive = Keyset(committed.ts - self.overlap, committed.id), True
        done, total, mark = 0, None, committed
        select: str | None = None
        while True:
            try:
                if select is None:
                    select = self._columns(mapping)
                    if select is None:
                        return
                query = self._query(mapping, select, lower, inclusive, total is None)
                res = self._execute(query, mapping)
            except _MissingTable:
                if mapping.explicit:
                    raise SourceConfigError(
                        f"Supabase has no table {mapping.schema}.{mapping.source_table}: "
                        "fix the table name in the config or create the table."
                    ) from None
                log.info("Supabase has no %s table yet; skipping it", mapping.source_table)
                return
            rows = res.data or []
            if total is None:
                total = res.count if res.count is not None else None
            if not rows:
                return
            last = rows[-1]
            page_end = Keyset(as_utc(last[mapping.cursor_column]), last[mapping.id_column])
            mark = later(mark, page_end)
            done += len(rows)
            yield Batch(
                table=mapping.target,
                rows=[to_warehouse_row(r, mapping) for r in rows],
                stream=mapping.stream,
                watermark=mark.to_json(),
                progress={"done": done, "total": max(total or 0, done), "table": mapping.target},
            )
            lower, inclusive = page_end, False
            if self.count == "exact" and total is not None and done >= total:
                return  # rows added since the count are read by the next run


class _MissingTable(Exception):
    pass


def to_warehouse_row(row: Mapping[str, Any], mapping: TableMapping) -> dict[str, Any]:
    """Rename and scale one source row into warehouse columns; naive timestamps taken as UTC."""
    spec = TABLES[mapping.target]
    out: dict[str, Any] = {}
    for col in spec.columns:
        value = row.get(mapping.source_column(col.name))
        if value is not None:
            factor = mapping.scale.get(col.name)
            if (
                factor is not None
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                value = value * factor
            elif col.type == "TIMESTAMP" and isinstance(value, str):
                value = _iso_with_offset(value)
        out[col.name] = value
    return out


def _iso_with_offset(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value  # the engine rejects it with a reason
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC).isoformat()
    return value
