"""[supabase]: one Supabase project, read over REST (supabase_rest) or, in postgres mode, over a
direct connection (supabase_pg), with the database's statement and resource statistics
(pg_stats) whenever SUPABASE_DB_URL is set. The source is named `supabase` in both modes, so a
Postgres backfill hands its watermarks over to REST polling."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from collectors.config_secrets import Secrets
from collectors.config_validator import IDENTIFIER, Validator
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.schema import TABLES
from collectors.sources.base import Source
from collectors.sources.registry import Built, SourceKind
from collectors.sources.supabase_rest import (
    DEFAULT_OVERLAP_S,
    DEFAULT_PAGE_SIZE,
    SupabaseRestSource,
    TableMapping,
    sdk_mappings,
)

Mode = Literal["rest", "postgres"]
TRANSACTION_POOLER_PORT = 6543  # supabase_pg refuses it too (check_conninfo)
API_KEYS = ("SUPABASE_API_KEY", "SUPABASE_SERVICE_ROLE_KEY")
KEYS = {
    "url",
    "mode",
    "page_size",
    "chunk_rows",
    "overlap_s",
    "tables",
    "mappings",
    "performance",
    "performance_interval",
    *SCHEDULE_KEYS,
}
MAPPING_KEYS = {"source", "target", "columns", "scale", "cursor_column", "id_column", "schema"}


@dataclass(frozen=True)
class SupabaseSettings:
    url: str | None
    schedule: Schedule
    mode: Mode = "rest"
    page_size: int = DEFAULT_PAGE_SIZE
    chunk_rows: int = 250_000
    overlap_s: float = DEFAULT_OVERLAP_S  # late commits: see supabase_rest.DEFAULT_OVERLAP_S
    tables: list[str] | None = None  # SDK tables to read (None: all of them)
    mappings: list[TableMapping] = field(default_factory=list)  # the user's own tables
    performance: bool = True
    performance_schedule: Schedule = field(default_factory=lambda: Schedule("interval", 300))


def supabase_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> SupabaseSettings | None:
    sb = v.table(data, "supabase")
    db_url = secrets.value("SUPABASE_DB_URL")
    if not sb and not db_url:
        return None
    sb = sb or {}
    v.known(sb, "supabase", KEYS)
    url = v.url(sb, "supabase", "url")
    given = v.string(sb, "supabase", "mode", "rest", choices=("rest", "postgres"))
    mode: Mode = "postgres" if given == "postgres" else "rest"
    tables = sb.get("tables")
    if tables is not None and (
        not isinstance(tables, list) or any(t not in TABLES for t in tables)
    ):
        v.fail("supabase.tables", f"must list warehouse tables from: {', '.join(TABLES)}")
        tables = None
    mappings = []
    for prefix, m in v.tables(data, "supabase.mappings"):
        parsed = table_mapping(m, prefix, v)
        if parsed:
            mappings.append(parsed)
    if mode == "rest":
        if not url:
            v.problem(f"supabase.url is not set: set SUPABASE_URL or [supabase] url in {v.where}.")
        if not secrets.value(*API_KEYS):
            v.problem(
                "SUPABASE_API_KEY is not set: put the project's service_role or secret key in "
                "the environment or .streamlit/secrets.toml."
            )
    elif not db_url:
        v.problem(
            "supabase.mode is 'postgres' but SUPABASE_DB_URL is not set: put the direct or "
            "session-pooler connection string in the environment or .streamlit/secrets.toml."
        )
    if db_url and f":{TRANSACTION_POOLER_PORT}" in db_url:
        v.problem(
            f"SUPABASE_DB_URL points at the transaction pooler (port {TRANSACTION_POOLER_PORT}): "
            "use the direct connection or the session pooler (port 5432)."
        )
    return SupabaseSettings(
        url=url,
        schedule=v.schedule(sb, "supabase", 60),
        mode=mode,
        page_size=v.integer(sb, "supabase", "page_size", DEFAULT_PAGE_SIZE, low=1, high=1_000_000),
        chunk_rows=v.integer(sb, "supabase", "chunk_rows", 250_000, low=1),
        overlap_s=v.number(sb, "supabase", "overlap_s", DEFAULT_OVERLAP_S, low=0),
        tables=tables,
        mappings=mappings,
        performance=v.boolean(sb, "supabase", "performance", True),
        performance_schedule=Schedule(
            "interval", v.number(sb, "supabase", "performance_interval", 300, low=10)
        ),
    )


def table_mapping(m: Mapping[str, Any], prefix: str, v: Validator) -> TableMapping | None:
    """One [[supabase.mappings]] entry: a table of the user's onto a warehouse table."""
    v.known(m, prefix, MAPPING_KEYS)
    source = v.string(m, prefix, "source")
    target = v.string(m, prefix, "target")
    if not source or not target:
        v.fail(prefix, "needs both source (the Supabase table) and target (a warehouse table)")
        return None
    if target not in TABLES:
        tables = ", ".join(TABLES)
        v.fail(f"{prefix}.target", f"must be a warehouse table ({tables}), not {target!r}")
        return None
    names = set(TABLES[target].column_names)
    columns = m.get("columns", {}) or {}
    scale = m.get("scale", {}) or {}
    for label, table in (("columns", columns), ("scale", scale)):
        if not isinstance(table, dict):
            v.fail(f"{prefix}.{label}", "must be a table of warehouse column = value")
            return None
        for col in table:
            if col not in names:
                known = ", ".join(sorted(names))
                v.fail(f"{prefix}.{label}.{col}", f"is not a column of {target} (columns: {known})")
    for col, src in columns.items():
        if not isinstance(src, str) or not IDENTIFIER.match(src):
            v.fail(f"{prefix}.columns.{col}", f"must name a source column (got {src!r})")
    for col, factor in scale.items():
        if isinstance(factor, bool) or not isinstance(factor, int | float):
            v.fail(f"{prefix}.scale.{col}", f"must be a number (got {factor!r})")
    cursor_column = m.get("cursor_column", "created_at")
    id_column = m.get("id_column", "id")
    for name in (source, cursor_column, id_column):
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            v.fail(prefix, f"has an invalid identifier {name!r}")
            return None
    return TableMapping(
        source,
        target,
        columns={k: str(x) for k, x in columns.items()},
        scale={k: float(x) for k, x in scale.items() if isinstance(x, int | float)},
        cursor_column=cursor_column,
        id_column=id_column,
        schema=m.get("schema", "public"),
        explicit=True,
    )


def supabase_sources(settings: SupabaseSettings, secrets: Secrets, data_dir: Path) -> Built:
    db_url = secrets.value("SUPABASE_DB_URL")
    mappings = sdk_mappings(settings.tables) if settings.tables is not None else sdk_mappings()
    mappings += settings.mappings
    # The Postgres driver is imported only where a connection string is used.
    source: Source
    if settings.mode == "postgres" and db_url:
        from collectors.sources.supabase_pg import SupabasePgSource

        source = SupabasePgSource(
            db_url, mappings, chunk_rows=settings.chunk_rows, overlap_s=settings.overlap_s
        )
    else:
        source = SupabaseRestSource(
            settings.url or "",
            secrets.value(*API_KEYS) or "",
            mappings,
            page_size=settings.page_size,
            overlap_s=settings.overlap_s,
        )
    out: Built = {source.name: (source, settings.schedule.as_dict())}
    if settings.performance and db_url:
        from collectors.sources.pg_stats import PgStatsSource

        perf = PgStatsSource(db_url)
        out[perf.name] = (perf, settings.performance_schedule.as_dict())
    return out


SUPABASE = SourceKind(
    name="supabase",
    sections=("supabase",),
    parse=supabase_settings,
    build=supabase_sources,
    env={"SUPABASE_URL": "supabase.url"},
    secrets=(*API_KEYS, "SUPABASE_DB_URL"),
)
