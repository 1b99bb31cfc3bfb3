"""A/B experiments on the warehouse: SQL computes sufficient statistics per arm (and per
exposure day), then `analysis.stats` compares each treatment arm with control.

Units come from `experiment_exposures` (unit_type 'call': unit_id is a call_id; 'caller':
unit_id is a calls.caller_id and only calls at or after the exposure count). How a metric
becomes a statistic depends on whether one fact row is one randomisation unit:
  * proportion/mean at call level with call units -> Proportion / SampleMean per call
    (optionally CUPED on the caller's pre-period value of the same metric);
  * anything else (turn, feedback or request level, caller units, ratio metrics) -> Ratio of
    per-unit sums over all exposed units, analysed with the delta method, so clustered
    observations are not treated as independent (with CUPED, RegressionAdjustedRatio on the
    caller's pre-period numerator and denominator sums);
  * quantile metrics -> per-arm order-statistic interval with a cluster design effect.
Experiment-period facts are read from a day before the first exposure (`FACTS_MARGIN`) up to
the end, so the cost of an evaluation follows the experiment's window rather than the
warehouse's history.
All SQL is parameterised; the only text composed into it is the registry's metric SQL and
fixed fragments chosen from whitelists below.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import duckdb

from analysis.experiment_rules import METHODS, UNIT_TYPES, Alternative, Method, UnitType
from analysis.metrics import Metric, builtin_metrics
from analysis.stats import (
    Comparison,
    DailyResult,
    MidExperimentPower,
    NormalPrior,
    PowerPlan,
    Proportion,
    Quantile,
    Ratio,
    RegressionAdjusted,
    RegressionAdjustedRatio,
    SampleMean,
    SrmResult,
    Statistic,
    adjust_comparisons,
    compare,
    mid_experiment_power,
    plan_experiment,
    results_over_time,
    srm_check,
)
from analysis.stats.corrections import CORRECTIONS, interval_statement
from analysis.stats.frequentist import DEFAULT_SEQUENTIAL_TUNING_N
from analysis.stats.results import not_computable
from analysis.stats.statistics import (
    add_statistics,
    quantile_interval_supported,
    quantile_ranks,
)


@dataclass(frozen=True)
class ExperimentDefinition:
    key: str
    control: str
    treatments: tuple[str, ...] = ()  # empty: every other variant seen in the exposures
    weights: Mapping[str, float] | None = None  # planned split; equal when omitted
    unit_type: UnitType = "call"
    start: dt.datetime | None = None  # naive UTC; defaults to the first exposure
    end: dt.datetime | None = None  # exclusive; exposures and facts from then on are ignored
    alpha: float = 0.05
    correction: str = "holm"  # none | holm | bh, across metrics × treatment arms
    cuped: bool = True
    pre_period_days: int = 30
    sequential_tuning_n: float = DEFAULT_SEQUENTIAL_TUNING_N
    # Bayesian prior on the relative lift, as gbstats sets it (NormalPrior's default variance
    # 0.09 is an sd of 30 % on the lift). Absolute effects (which the verdict reads) and the
    # daily series get it rescaled by the control mean, so it reaches the decision. Flat if
    # None.
    prior: NormalPrior | None = None
    alternative: Alternative = "two-sided"  # on treatment − control, for every method


class SavedDefinition(Protocol):
    """An experiment as the Experiments page saves it (collectors.control.SavedExperiment)."""

    @property
    def key(self) -> str: ...
    @property
    def variants(self) -> tuple[str, ...]: ...  # the first is control
    @property
    def weights(self) -> tuple[float, ...]: ...
    @property
    def unit_type(self) -> UnitType: ...
    @property
    def start_at(self) -> str | None: ...  # naive-UTC ISO timestamps
    @property
    def end_at(self) -> str | None: ...  # the last day, inclusive


def experiment_definition(saved: SavedDefinition) -> ExperimentDefinition:
    """The analysis's view of a saved experiment. The end date is inclusive on the page, so
    the analysis window ends at the start of the next day."""
    end = dt.datetime.fromisoformat(saved.end_at) + dt.timedelta(days=1) if saved.end_at else None
    return ExperimentDefinition(
        saved.key,
        saved.variants[0],
        tuple(saved.variants[1:]),
        dict(zip(saved.variants, saved.weights, strict=True)),
        saved.unit_type,
        dt.datetime.fromisoformat(saved.start_at) if saved.start_at else None,
        end,
    )


@dataclass(frozen=True)
class MetricArmResult:
    metric: str
    label: str
    unit: str
    metric_type: str
    lower_is_better: bool
    arm: str
    control: Statistic | None
    treatment: Statistic | None
    absolute: Comparison
    relative: Comparison
    direction: str  # "better" | "worse" | "unclear"
    verdict: str
    daily: tuple[DailyResult, ...] = ()


@dataclass(frozen=True)
class ExperimentResult:
    key: str
    method: Method
    computable: bool
    reason: str
    control: str = ""
    treatments: tuple[str, ...] = ()
    units: dict[str, int] = field(default_factory=dict)
    srm: SrmResult | None = None
    results: tuple[MetricArmResult, ...] = ()
    notes: tuple[str, ...] = ()

    def result(self, metric: str, arm: str | None = None) -> MetricArmResult | None:
        for r in self.results:
            if r.metric == metric and (arm is None or r.arm == arm):
                return r
        return None


# --------------------------------------------------------------------------- SQL


def _params(sql: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Only the named parameters the statement uses (DuckDB rejects extra ones)."""
    used = set(re.findall(r"\$([a-z_][a-z0-9_]*)", sql))
    return {k: v for k, v in values.items() if k in used}


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, values: Mapping[str, Any]
) -> list[tuple[Any, ...]]:
    return con.execute(sql, _params(sql, values)).fetchall()


# The experiment's units are built once per evaluation into a connection-local temporary
# table (exposures joined to calls once, for the caller of call units) that every metric's
# statement reads; it is dropped when the evaluation ends.
_UNITS_TABLE = "experiment_units_tmp"
_OBS_TABLE = "experiment_obs_tmp"
_UNITS_BUILD = f"""CREATE OR REPLACE TEMP TABLE {_UNITS_TABLE} AS
    SELECT e.unit_id, e.variant, e.exposed_at, CAST(e.exposed_at AS DATE) AS day,
           CASE WHEN $unit_type = 'caller' THEN e.unit_id ELSE c.caller_id END AS caller_id,
           list_position($arms, e.variant) - 1 AS arm,
           c.call_id IS NOT NULL AS has_call{{carried}}
    FROM experiment_exposures e
    LEFT JOIN {{calls}} c ON $unit_type = 'call' AND c.call_id = e.unit_id
        AND c.started_at >= $facts_from
    WHERE e.experiment_key = $key
      AND (e.unit_type = $unit_type OR e.unit_type IS NULL)
      AND list_contains($arms, e.variant)
      AND ($end IS NULL OR e.exposed_at < $end)"""  # noqa: S608 - constant name


def _units_build_sql(columns: Sequence[str]) -> str:
    """The units table; `columns` (fixed fragments of `_calls_columns`) carry the call's
    registry facts along, since this statement joins each call unit to its call anyway."""
    if not columns:
        return _UNITS_BUILD.format(carried="", calls="calls")
    calls = f"(SELECT call_id, caller_id, started_at, started_at AS fact_ts, {', '.join(columns)} FROM calls)"  # noqa: S608
    names = [c.rsplit(" AS ", 1)[1] for c in columns]
    carried = ", c.fact_ts, " + ", ".join(f"c.{n}" for n in names)
    return _UNITS_BUILD.format(carried=carried, calls=calls)


# uid: the unit's row number, an integer key that identifies the unit when unit ids are
# unique (checked once per evaluation); grouping on it is cheaper than on strings.
_UNITS = f"units AS (SELECT *, rowid AS uid FROM {_UNITS_TABLE})"  # noqa: S608 - constant name
_UNIQUE_SQL = f"SELECT count(*) = count(DISTINCT unit_id) FROM {_UNITS_TABLE}"  # noqa: S608
# Call units whose call started before the facts window (an exposure recorded long after its
# call started, e.g. imported later): the window then opens a margin before the earliest.
_EARLY_CALLS_SQL = f"""SELECT min(c.started_at) FROM {_UNITS_TABLE} u
    JOIN calls c ON c.call_id = u.unit_id WHERE NOT u.has_call"""  # noqa: S608 - constant name

# How facts reach units: the call itself, or the caller's calls since exposure.
_JOIN = {
    "call": """FROM facts f JOIN units u ON f.call_id = u.unit_id
    WHERE f.ts >= $facts_from AND ($end IS NULL OR f.ts < $end)""",
    "caller": """FROM facts f JOIN calls c ON c.call_id = f.call_id
    JOIN units u ON u.unit_id = c.caller_id
    WHERE f.ts >= u.exposed_at AND f.ts >= $facts_from AND ($end IS NULL OR f.ts < $end)""",
}


def _with(metric: Metric, unit_type: str, columns: str) -> str:
    return (
        f"WITH {_UNITS},\nfacts AS ({metric.sql}),\n"
        f"joined AS (SELECT u.unit_id, u.uid, u.variant, u.day, u.caller_id, {columns}\n"
        f"    {_JOIN[unit_type]})\n"
    )


# Units exposed to variants the definition does not plan: an assignment bug SRM must show.
_UNPLANNED_SQL = """SELECT variant, count(*) FROM experiment_exposures
    WHERE experiment_key = $key
      AND (unit_type = $unit_type OR unit_type IS NULL)
      AND NOT list_contains($arms, variant)
      AND ($end IS NULL OR exposed_at < $end)
    GROUP BY variant"""


def _exposures_sql() -> str:
    return f"WITH {_UNITS} SELECT variant, day, count(*) FROM units GROUP BY ALL"  # noqa: S608


def _single_sql(metric: Metric) -> str:
    return _with(metric, "call", "CAST(f.value AS DOUBLE) AS value") + (  # noqa: S608 - registry SQL, fixed fragments
        "SELECT variant, day, count(*), sum(x), sum(x * x) FROM ("
        "SELECT variant, day, unit_id, avg(value) AS x FROM joined "
        "WHERE value IS NOT NULL GROUP BY ALL) GROUP BY ALL"
    )


def _cuped_sql(metric: Metric) -> str:
    # Covariate: the caller's mean of the same metric over calls in the pre-period. Units
    # without history get the mean covariate of those with history (a constant, so the
    # adjustment stays unbiased; Deng et al. 2013 section 3.3 allow any pre-period function).
    return _with(metric, "call", "CAST(f.value AS DOUBLE) AS value") + (  # noqa: S608 - registry SQL, fixed fragments
        ", per_unit AS (SELECT variant, day, unit_id, caller_id, avg(value) AS y FROM joined "
        "WHERE value IS NOT NULL GROUP BY ALL),\n"
        "pre AS (SELECT c.caller_id, avg(CAST(f.value AS DOUBLE)) AS x FROM facts f "
        "JOIN (SELECT DISTINCT call_id, caller_id FROM calls) c ON c.call_id = f.call_id "
        "WHERE f.ts >= $pre_start AND f.ts < $pre_end "
        "AND c.caller_id IS NOT NULL AND f.value IS NOT NULL GROUP BY 1),\n"
        "with_pre AS (SELECT p.variant, p.day, p.y, pre.x FROM per_unit p "
        "LEFT JOIN pre ON pre.caller_id = p.caller_id),\n"
        "fill AS (SELECT coalesce(avg(x), 0.0) AS x0 FROM with_pre)\n"
        "SELECT variant, day, count(*), sum(y), sum(y * y), sum(coalesce(x, x0)), "
        "sum(coalesce(x, x0) * coalesce(x, x0)), sum(y * coalesce(x, x0)), count(x) "
        "FROM with_pre, fill GROUP BY variant, day"
    )


def _ratio_columns(metric: Metric) -> str:
    if metric.type == "ratio":
        return "CAST(f.numerator AS DOUBLE) AS m, CAST(f.denominator AS DOUBLE) AS d"
    # a mean or rate over facts that are not units: Σvalue / #facts per unit
    return (
        "CAST(f.value AS DOUBLE) AS m, CASE WHEN f.value IS NULL THEN 0.0 ELSE 1.0 END::DOUBLE AS d"
    )


def _ratio_sql(metric: Metric, unit_type: str) -> str:
    cols = _ratio_columns(metric)
    return _with(metric, unit_type, cols) + (  # noqa: S608 - registry SQL, fixed fragments
        "SELECT variant, day, count(*), sum(m), sum(m * m), sum(d), sum(d * d), sum(m * d) "
        "FROM (SELECT variant, day, unit_id, coalesce(sum(m), 0.0) AS m, "
        "coalesce(sum(d), 0.0) AS d FROM joined GROUP BY ALL) GROUP BY ALL"
    )


# The ten products of (m, d, mx, dx) in RegressionAdjustedRatio's order.
_RATIO_PRODUCTS = ", ".join(
    f"sum({a} * {b})"
    for i, a in enumerate(("m", "d", "mx", "dx"))
    for b in ("m", "d", "mx", "dx")[i:]
)


def _cuped_ratio_sql(metric: Metric, unit_type: str, unique: bool) -> str:
    """Per (variant, day): n, Σm, Σd, Σmx, Σdx and the ten products, over every exposed unit:
    its sums in the experiment (0 without facts) and its caller's sums of the same numerator
    and denominator over the pre-period (0 for a new caller, a constant, so unbiased). Every
    exposed unit carries its covariate whatever happened after exposure. With unique unit
    ids the units are keyed by their integer row number (`uid`), cheaper than the strings."""
    cols = _ratio_columns(metric)
    key = "uid" if unique else "unit_id"
    units = (
        "(SELECT variant, day, uid, caller_id FROM units)"
        if unique
        else "(SELECT DISTINCT variant, day, unit_id, caller_id FROM units)"
    )
    return _with(metric, unit_type, cols) + (  # noqa: S608 - registry SQL, fixed fragments
        f", post AS (SELECT variant, day, {key}, coalesce(sum(m), 0.0) AS m, "  # noqa: S608
        "coalesce(sum(d), 0.0) AS d FROM joined GROUP BY ALL),\n"
        f"prefacts AS (SELECT f.call_id, {cols} FROM facts f "
        "WHERE f.ts >= $pre_start AND f.ts < $pre_end),\n"
        # DISTINCT: a call row stored twice must not count its facts twice; only the calls
        # with pre-period facts are deduplicated, not the whole table
        "pre AS (SELECT c.caller_id, coalesce(sum(m), 0.0) AS mx, coalesce(sum(d), 0.0) AS dx "
        "FROM prefacts f JOIN (SELECT DISTINCT call_id, caller_id FROM calls "
        "WHERE call_id IN (SELECT call_id FROM prefacts)) c ON c.call_id = f.call_id "
        "WHERE c.caller_id IS NOT NULL GROUP BY 1),\n"
        "per AS (SELECT u.variant, u.day, coalesce(p.m, 0.0) AS m, coalesce(p.d, 0.0) AS d, "
        "coalesce(q.mx, 0.0) AS mx, coalesce(q.dx, 0.0) AS dx "
        f"FROM {units} u "
        f"LEFT JOIN post p ON p.{key} = u.{key} AND p.variant = u.variant AND p.day = u.day "
        "LEFT JOIN pre q ON q.caller_id = u.caller_id)\n"
        f"SELECT variant, day, count(*), sum(m), sum(d), sum(mx), sum(dx), {_RATIO_PRODUCTS} "
        "FROM per GROUP BY ALL"
    )


# ------------------------------------------------------------------ statistics


def _kind(metric: Metric, unit_type: str) -> str:
    if metric.type == "quantile":
        return "quantile"
    if metric.type in ("proportion", "mean") and metric.level == "call" and unit_type == "call":
        return "single"
    return "ratio"


DailyStats = dict[str, dict[dt.date, Statistic]]
# (day, control, treatment): an arm pair's statistics summed up to and including the day
Cumulative = tuple[dt.date, Statistic, Statistic]


def _daily_statistics(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    definition: ExperimentDefinition,
    values: Mapping[str, Any],
    exposures: Mapping[str, Mapping[dt.date, int]],
    use_cuped: bool,
) -> DailyStats:
    kind = _kind(metric, definition.unit_type)
    out: DailyStats = {arm: {} for arm in exposures}
    if kind == "single" and use_cuped:
        for arm, day, n, s, ss, xs, xss, xy, _ in _run(con, _cuped_sql(metric), values):
            post = Proportion(n, s) if metric.type == "proportion" else SampleMean(n, s, ss)
            out.setdefault(arm, {})[day] = RegressionAdjusted(post, SampleMean(n, xs, xss), xy)
    elif kind == "single":
        for arm, day, n, s, ss in _run(con, _single_sql(metric), values):
            stat = Proportion(n, s) if metric.type == "proportion" else SampleMean(n, s, ss)
            out.setdefault(arm, {})[day] = stat
    elif use_cuped:
        sql = _cuped_ratio_sql(metric, definition.unit_type, bool(values.get("units_unique")))
        for arm, day, n, *sums in _run(con, sql, values):
            out.setdefault(arm, {})[day] = _adjusted_ratio(n, sums)
    else:
        rows = {
            (arm, day): rest
            for arm, day, *rest in _run(con, _ratio_sql(metric, definition.unit_type), values)
        }
        _fill_ratios(out, rows, exposures)
    return out


def _adjusted_ratio(n: int, sums: Sequence[Any]) -> RegressionAdjustedRatio:
    """ΣM, ΣD, ΣMx, ΣDx and the ten products, as the statements select them (NULL: 0)."""
    v = [float(x or 0.0) for x in sums]
    return RegressionAdjustedRatio(
        int(n),
        (v[0], v[1], v[2], v[3]),
        (v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13]),
    )


def _fill_ratios(
    out: DailyStats,
    rows: Mapping[tuple[str, dt.date], Sequence[Any]],
    exposures: Mapping[str, Mapping[dt.date, int]],
) -> None:
    # Exposed units without any fact still count: they add n and nothing to the sums.
    for arm, days in exposures.items():
        for day, n in days.items():
            _, m, mm, d, dd, md = rows.get((arm, day), (0, 0.0, 0.0, 0.0, 0.0, 0.0))
            out[arm][day] = Ratio(n, m, mm, d, dd, md)


# Registry metrics whose facts are rows of `calls` (one per call, ts = started_at): with
# call units and unique unit ids, one statement computes all of them over one join of units
# to calls (and one pre-period pass), instead of one join and aggregate per metric. Only the
# registry's own SQL qualifies, so the fragments composed below are fixed registry text.
_CALLS_FACTS = re.compile(
    r"SELECT call_id, started_at AS ts, (?:(?P<value>.+) AS value|"
    r"(?P<num>.+) AS numerator, (?P<den>.+) AS denominator) FROM calls WHERE (?P<cond>.+)"
)


def _calls_fragments(metric: Metric, unit_type: str) -> dict[str, str] | None:
    """The registry SQL's value (or numerator, denominator) and condition, or None."""
    if unit_type != "call" or metric.type == "quantile":
        return None
    if metric.sql not in {m.sql for m in builtin_metrics().values()}:
        return None
    match = _CALLS_FACTS.fullmatch(metric.sql)
    if match is None:
        return None
    kind = _kind(metric, unit_type)
    if kind == "single" and match["value"] is not None:
        return {"value": match["value"], "cond": match["cond"]}
    if kind == "ratio" and metric.type == "ratio" and match["num"] is not None:
        return {"num": match["num"], "den": match["den"], "cond": match["cond"]}
    return None


def _calls_columns(parts: Sequence[dict[str, str]]) -> list[str]:
    """Per metric j, its fact on the call's row: y_j (NULL when the registry SQL has no row
    or a NULL value), or k_j (the row exists) with m_j, d_j (0 when NULL, as summed alone)."""
    cols = []
    for j, p in enumerate(parts):
        if "value" in p:
            cols.append(f"CASE WHEN ({p['cond']}) THEN CAST(({p['value']}) AS DOUBLE) END AS y{j}")
        else:
            cols += [
                f"coalesce(({p['cond']}), false) AS k{j}",
                f"coalesce(CAST(({p['num']}) AS DOUBLE), 0.0) AS m{j}",
                f"coalesce(CAST(({p['den']}) AS DOUBLE), 0.0) AS d{j}",
            ]
    return cols


def _calls_sql(parts: Sequence[dict[str, str]], use_cuped: bool) -> str:
    """Per (variant, day): for each single metric j count, Σy, Σy² (and with CUPED, over the
    units with a value: Σx, Σx², Σxy and #x over those with a pre-period, and Σy over those
    without), for each ratio metric #units, Σm, Σm², Σd, Σd², Σmd (with CUPED, the 14 sums of
    `_cuped_ratio_sql` over the units with a call, the caller's pre-period beside): the
    statements of `_single_sql`, `_cuped_sql`, `_ratio_sql` and `_cuped_ratio_sql` when each
    unit has at most one calls row,
    read from the columns the units table carries (`_units_build_sql`). Filling a missing
    covariate with the mean one happens in `_fill_covariate`, so this is one pass."""
    # CASE rather than FILTER: the same sums, measurably cheaper over a million units.
    pre, out = [], []
    for j, p in enumerate(parts):
        if "value" in p:
            y = f"y{j}"
            out += [f"count({y})", f"sum({y})", f"sum({y} * {y})"]
            if use_cuped:
                x = f"CASE WHEN {y} IS NOT NULL THEN x{j} END"
                pre.append(f"avg({y}) AS x{j}")
                out += [
                    f"sum({x})",
                    f"sum({x} * {x})",
                    f"sum({y} * x{j})",
                    f"count({x})",
                    f"sum(CASE WHEN x{j} IS NULL THEN {y} END)",
                ]
        elif use_cuped:  # RegressionAdjustedRatio: every unit, 0 where the call has no fact
            k, m, d = f"k{j}", f"m{j}", f"d{j}"
            pre += [
                f"sum(CASE WHEN {k} THEN {m} ELSE 0.0 END) AS mx{j}",
                f"sum(CASE WHEN {k} THEN {d} ELSE 0.0 END) AS dx{j}",
            ]
            four = (
                f"CASE WHEN {k} THEN {m} ELSE 0.0 END",
                f"CASE WHEN {k} THEN {d} ELSE 0.0 END",
                f"coalesce(mx{j}, 0.0)",
                f"coalesce(dx{j}, 0.0)",
            )
            out += [f"sum({a})" for a in four]
            out += [f"sum(({a}) * ({b}))" for i, a in enumerate(four) for b in four[i:]]
        else:
            k, m, d = f"k{j}", f"m{j}", f"d{j}"
            out += [f"count(*) FILTER (WHERE {k})"] + [
                f"sum(CASE WHEN {k} THEN {e} END)"
                for e in (m, f"{m} * {m}", d, f"{d} * {d}", f"{m} * {d}")
            ]
    base = (
        f"SELECT * FROM {_UNITS_TABLE} "  # noqa: S608 - constant name
        "WHERE has_call AND ($end IS NULL OR fact_ts < $end)"
    )
    select = "SELECT variant, day, " + ", ".join(out)
    if not pre:
        return f"{select} FROM ({base}) GROUP BY variant, day"
    # The pre-period reads the registry's calls fragments with the caller on the same row.
    values = _calls_columns(parts)
    facts = f"SELECT caller_id, started_at AS ts, {', '.join(values)} FROM calls"  # noqa: S608
    pre_sql = (
        f"SELECT caller_id, {', '.join(pre)} FROM ({facts}) "  # noqa: S608 - fixed fragments
        "WHERE ts >= $pre_start AND ts < $pre_end AND caller_id IS NOT NULL GROUP BY 1"
    )
    return (
        f"WITH pre AS ({pre_sql})\n"  # noqa: S608 - fixed fragments
        f"{select} FROM ({base}) b LEFT JOIN pre p ON p.caller_id = b.caller_id "
        "GROUP BY variant, day"
    )


def _fill_covariate(rows: Sequence[Sequence[Any]], j: int) -> list[tuple[Any, ...]]:
    """Per (arm, day), the CUPED sums of metric j (columns n, Σy, Σy², Σx, Σx², Σxy, #x, Σy
    without x) with each missing covariate replaced by the mean covariate of all units with a
    value and a pre-period f: Σx + f·(n − #x), Σx² + f²·(n − #x), Σxy + f·Σy without x. The
    same sums `_cuped_sql` computes row by row (its `fill`)."""
    with_x = sum(r[j + 6] or 0 for r in rows)
    f = sum(r[j + 3] or 0.0 for r in rows) / with_x if with_x else 0.0
    out = []
    for r in rows:
        n, s, ss, xs, xss, xy, nx, y_alone = (r[j + i] for i in range(8))
        missing = (n or 0) - (nx or 0)
        out.append(
            (
                n, s, ss,
                (xs or 0.0) + f * missing,
                (xss or 0.0) + f * f * missing,
                (xy or 0.0) + f * (y_alone or 0.0),
            )
        )  # fmt: skip
    return out


def _calls_statistics(
    con: duckdb.DuckDBPyConnection,
    metrics: Sequence[Metric],
    parts: Mapping[int, dict[str, str]],
    values: Mapping[str, Any],
    exposures: Mapping[str, Mapping[dt.date, int]],
    use_cuped: bool,
) -> dict[int, DailyStats]:
    """Daily statistics of the metrics in `parts` (by position in `metrics`, carried by the
    units table); empty when unit ids repeat or the statement fails (each metric then runs
    alone, as it would without the shared statement)."""
    if not parts or not values.get("units_unique"):
        return {}
    order = list(parts)
    try:
        rows = _run(con, _calls_sql([parts[i] for i in order], use_cuped), values)
    except duckdb.Error:
        return {}
    out: dict[int, DailyStats] = {i: {arm: {} for arm in exposures} for i in order}
    at = 2  # after variant, day
    for i in order:
        metric, stats = metrics[i], out[i]
        if "value" not in parts[i] and use_cuped:
            # units without a calls row add n and nothing else: n comes from the exposures
            adjusted = {(r[0], r[1]): r[at : at + 14] for r in rows}
            for arm, days in exposures.items():
                for day, n in days.items():
                    row = adjusted.get((arm, day), (0.0,) * 14)
                    stats[arm][day] = _adjusted_ratio(n, row)
            at += 14
            continue
        if "value" not in parts[i]:
            ratios = {(r[0], r[1]): r[at : at + 6] for r in rows if r[at]}
            _fill_ratios(stats, ratios, exposures)
            at += 6
            continue
        if use_cuped:
            sums, at = _fill_covariate(rows, at), at + 8
        else:
            sums, at = [r[at : at + 3] for r in rows], at + 3
        for (arm, day, *_), (n, s, ss, *cov) in zip(rows, sums, strict=True):
            if not n:  # no unit of this (arm, day) has a value: no row, as alone
                continue
            post: Statistic
            post = Proportion(n, s) if metric.type == "proportion" else SampleMean(n, s, ss)
            if use_cuped:
                xs, xss, xy = cov
                post = RegressionAdjusted(post, SampleMean(n, xs, xss), xy)
            stats.setdefault(arm, {})[day] = post
    return out


def _total(stats: Mapping[dt.date, Statistic]) -> Statistic | None:
    total: Statistic | None = None
    for day in sorted(stats):
        total = stats[day] if total is None else add_statistics(total, stats[day])
    return total


def _quantile_obs_sql(metric: Metric, unit_type: str, unique: bool) -> str:
    """Materialise the metric's observations once; the statements below read them. `key`
    (uid·k + arm index) carries unit and arm in one integer; with duplicate unit ids the
    unit id is kept too, since the unit is then (arm, unit id), not one units row."""
    head = _with(
        metric, unit_type, "u.uid * $n_arms + u.arm AS key, CAST(f.value AS DOUBLE) AS value"
    )
    return (
        f"CREATE OR REPLACE TEMP TABLE {_OBS_TABLE} AS "  # noqa: S608 - fixed fragments
        + head
        + "SELECT key, value"
        + ("" if unique else ", unit_id")
        + " FROM joined WHERE value IS NOT NULL"
    )


def _quantile_statistics(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    definition: ExperimentDefinition,
    values: Mapping[str, Any],
    arms: Sequence[str],
) -> dict[str, Quantile]:
    """Per-arm n first, then one pass for the estimate (the ceil(n·ν)-th smallest value,
    DuckDB's quantile_disc) with the interval's order statistics at the ranks of
    `quantile_ranks`, and one for the cluster design effect: the delta-method variance of the
    share of observations ≤ Q̂ over whole units, divided by its iid value ν(1−ν)/n."""
    nu = float(metric.quantile or 0.5)
    unique = bool(values.get("units_unique"))
    _run(con, _quantile_obs_sql(metric, definition.unit_type, unique), values)
    count_sql = f"SELECT key % $n_arms, count(*) FROM {_OBS_TABLE} GROUP BY 1"  # noqa: S608
    counts = {arms[int(a)]: int(n) for a, n in _run(con, count_sql, values)}
    out = {arm: Quantile(0, nu, math.nan, math.nan, math.nan) for arm in arms}
    found = [a for a in arms if counts.get(a)]
    if not found:
        return out
    # One grouped pass: every arm's three fractions (bounds depend on its n) in one list,
    # each arm then reads its own three; cheaper than a filtered aggregate per arm.
    fractions, params = [], dict(values)
    for arm in found:
        n = counts[arm]
        if quantile_interval_supported(n, nu):
            lo, _, hi = quantile_ranks(n, nu)
            # quantile_disc at (r − ½)/n is exactly the r-th smallest value.
            fractions += [(lo - 0.5) / n, nu, (hi - 0.5) / n]
        else:
            fractions += [nu, nu, nu]  # no interval: the estimate alone
    params["fractions"] = fractions
    bounds_sql = (
        "SELECT key % $n_arms, quantile_disc(value, $fractions) "  # noqa: S608 - constant name
        f"FROM {_OBS_TABLE} GROUP BY 1"
    )
    by_arm = {int(a): qs for a, qs in _run(con, bounds_sql, params)}
    bounds = []
    for i, arm in enumerate(found):
        bounds.append(tuple(by_arm[arms.index(arm)][3 * i : 3 * i + 3]))
        params[f"a{i}"] = arms.index(arm)
    case = []
    for i, (_, q, _) in enumerate(bounds):
        params[f"q{i}"] = float(q)
        case.append(f"WHEN $a{i} THEN $q{i}")
    estimate_by_arm = "CASE key % $n_arms " + " ".join(case) + " END"  # $-parameters only
    # One unit: one key when unit ids are unique, else every (arm, unit id).
    group = "key" if unique else "key % $n_arms, unit_id"  # the arm is a function of either
    sql = (
        "WITH per_unit AS (SELECT key % $n_arms AS arm, count(*) AS c, "  # noqa: S608
        "count(*) FILTER (WHERE value <= " + estimate_by_arm + ") AS i "
        f"FROM {_OBS_TABLE} GROUP BY {group})\n"
        "SELECT arm, count(*) AS m, sum(i) AS si, sum(i * i) AS sii, "
        "sum(c) AS sc, sum(c * c) AS scc, sum(i * c) AS sic FROM per_unit GROUP BY arm"
    )
    for a, m, si, sii, sc, scc, sic in _run(con, sql, params):
        arm = arms[int(a)]
        if arm not in found:
            continue
        lo, q, hi = bounds[found.index(arm)]
        n = counts[arm]
        if not quantile_interval_supported(n, nu):
            out[arm] = Quantile(n, nu, float(q), math.nan, math.nan, n_units=int(m))
            continue
        clustered = Ratio(m, si, sii, sc, scc, sic).variance_of_mean
        iid = nu * (1 - nu) / n
        # Floored at 1: never report a clustered interval narrower than the iid one.
        design = max(clustered / iid, 1.0) if math.isfinite(clustered) else 1.0
        out[arm] = Quantile(n, nu, float(q), float(lo), float(hi), 0.95, design, int(m))
    return out


# ------------------------------------------------------------------ verdicts


def _fmt(metric: Metric, value: float, signed: bool = True) -> str:
    if not math.isfinite(value):
        return "unbounded"
    sign = "+" if signed else ""
    if metric.type == "proportion":
        return f"{value * 100:{sign}.1f} points"
    unit = f" {metric.unit}" if metric.unit and metric.unit not in ("%",) else ""
    return f"{value:{sign}.3g}{unit}"


def _direction(metric: Metric, c: Comparison) -> str:
    if not (c.computable and c.significant):
        return "unclear"
    improved = (c.effect < 0) if metric.lower_is_better else (c.effect > 0)
    return "better" if improved else "worse"


def _metric_verdict(metric: Metric, arm: str, c: Comparison, rel: Comparison) -> str:
    if not c.computable:
        return f"{metric.title}: cannot compare {arm} with control yet ({c.reason})."
    pct = f", {rel.effect * 100:+.1f} %" if rel.computable else ""
    change = f"{_fmt(metric, c.effect)}{pct}"
    if c.method == "bayesian":
        evidence = f"chance to beat control {c.chance_to_beat_control * 100:.0f} %"
    else:
        # the level (and any correction) is stated once, beside the table
        evidence = f"interval {_fmt(metric, c.ci_low)} to {_fmt(metric, c.ci_high)}"
    direction = _direction(metric, c)
    if direction == "unclear":
        return f"{metric.title}: not enough evidence yet of a difference ({change}; {evidence})."
    word = "improved" if direction == "better" else "made worse"
    return f"{metric.title}: {arm} {word} it by {change} ({evidence})."


# ------------------------------------------------------------------ public API


def _check(definition: ExperimentDefinition, method: Method) -> str:
    if method not in METHODS:
        return f"method must be one of {', '.join(METHODS)} (got {method!r})"
    if definition.unit_type not in UNIT_TYPES:
        return f"unit_type must be one of {', '.join(UNIT_TYPES)}"
    if definition.correction not in CORRECTIONS:
        return f"correction must be one of {', '.join(CORRECTIONS)}"
    if not 0 < definition.alpha < 1:
        return "alpha must be between 0 and 1"
    if definition.alternative not in ("two-sided", "greater", "less"):
        return "alternative must be two-sided, greater or less"
    return ""


def _base_values(definition: ExperimentDefinition, arms: Sequence[str]) -> dict[str, Any]:
    return {
        "key": definition.key,
        "unit_type": definition.unit_type,
        "arms": list(arms),
        "end": definition.end,
        "n_arms": len(arms),
    }


def _resolve_arms(
    con: duckdb.DuckDBPyConnection, definition: ExperimentDefinition
) -> tuple[str, ...]:
    if definition.treatments:
        return (definition.control, *definition.treatments)
    rows = con.execute(
        "SELECT DISTINCT variant FROM experiment_exposures WHERE experiment_key = ? "
        "AND (unit_type = ? OR unit_type IS NULL) ORDER BY variant",
        [definition.key, definition.unit_type],
    ).fetchall()
    others = tuple(r[0] for r in rows if r[0] != definition.control)
    return (definition.control, *others)


def _first_exposure(
    con: duckdb.DuckDBPyConnection, definition: ExperimentDefinition
) -> dt.datetime | None:
    row = con.execute(
        "SELECT min(exposed_at) FROM experiment_exposures WHERE experiment_key = ? "
        "AND (unit_type = ? OR unit_type IS NULL)",
        [definition.key, definition.unit_type],
    ).fetchone()
    return cast(dt.datetime | None, row[0]) if row else None


# Experiment facts are read from this long before the first exposure (or before the start of
# the earliest exposed call, when an exposure was recorded long after its call started): a
# call's turns, requests and feedback belong to it even when its exposure came later. Older
# facts are never read, so an experiment's cost follows its own window, not the warehouse's
# whole history. (The CUPED pre-period reads earlier facts on purpose, outside this window.)
FACTS_MARGIN = dt.timedelta(days=1)
_NO_EXPOSURE = dt.datetime(1970, 1, 1)


def _pre_window(
    definition: ExperimentDefinition, first: dt.datetime | None
) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = definition.start or first
    if start is None:
        return None, None
    return start - dt.timedelta(days=definition.pre_period_days), start


def _build_units(
    con: duckdb.DuckDBPyConnection,
    definition: ExperimentDefinition,
    parts: dict[int, dict[str, str]],
    values: dict[str, Any],
) -> dict[int, dict[str, str]]:
    """Build the units table; returns the metrics it carries (none if their SQL failed)."""
    try:
        _run(con, _units_build_sql(_calls_columns(list(parts.values()))), values)
    except duckdb.Error:
        if not parts:
            raise
        parts = {}  # the metrics' own statements will name the problem
        _run(con, _units_build_sql([]), values)
    if definition.unit_type == "call":
        early = _run(con, _EARLY_CALLS_SQL, values)[0][0]
        if early is not None:  # rare: widen the window so no exposed call loses its facts
            values["facts_from"] = early - FACTS_MARGIN
            return _build_units(con, definition, parts, values)
    return parts


def evaluate_experiment(
    con: duckdb.DuckDBPyConnection,
    definition: ExperimentDefinition,
    metrics: Sequence[Metric],
    method: Method = "fixed",
    include_daily: bool = True,
) -> ExperimentResult:
    """Per-metric, per-arm results and SRM (`verdict` puts them in words). Never raises on
    data."""
    reason = _check(definition, method)
    if reason:
        return ExperimentResult(definition.key, method, False, reason)
    try:
        arms = _resolve_arms(con, definition)
        values = _base_values(definition, arms)
        first = values["first_exposure"] = _first_exposure(con, definition)
        values["facts_from"] = first - FACTS_MARGIN if first else _NO_EXPOSURE
        parts = {
            i: p for i, m in enumerate(metrics) if (p := _calls_fragments(m, definition.unit_type))
        }
        parts = _build_units(con, definition, parts, values)
        values["units_unique"] = bool(_run(con, _UNIQUE_SQL, values)[0][0])
    except duckdb.Error as exc:
        return ExperimentResult(definition.key, method, False, f"could not read exposures: {exc}")
    try:
        return _evaluate(con, definition, metrics, method, include_daily, arms, values, parts)
    finally:
        for table in (_UNITS_TABLE, _OBS_TABLE):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _evaluate(
    con: duckdb.DuckDBPyConnection,
    definition: ExperimentDefinition,
    metrics: Sequence[Metric],
    method: Method,
    include_daily: bool,
    arms: tuple[str, ...],
    values: dict[str, Any],
    parts: Mapping[int, dict[str, str]],
) -> ExperimentResult:
    try:
        exposures: dict[str, dict[dt.date, int]] = {arm: {} for arm in arms}
        for arm, day, n in _run(con, _exposures_sql(), values):
            exposures[arm][day] = int(n)
        unplanned = {str(v): int(n) for v, n in _run(con, _UNPLANNED_SQL, values)}
        first = values["first_exposure"]
        pre_start, pre_end = _pre_window(definition, first) if definition.cuped else (None, None)
    except duckdb.Error as exc:
        return ExperimentResult(definition.key, method, False, f"could not read exposures: {exc}")
    units = {arm: sum(days.values()) for arm, days in exposures.items()}
    treatments = arms[1:]
    if not units.get(definition.control):
        return ExperimentResult(
            definition.key,
            method,
            False,
            f"no units were exposed to the control variant {definition.control!r}",
            definition.control,
            treatments,
            units,
        )
    if not treatments:
        return ExperimentResult(
            definition.key, method, False, "no treatment variant has exposures",
            definition.control, treatments, units,
        )  # fmt: skip
    planned = definition.weights or {arm: 1.0 for arm in arms}  # equal split when omitted
    srm = srm_check({**unplanned, **units}, planned)
    values.update(pre_start=pre_start, pre_end=pre_end)
    notes: list[str] = []
    pending: list[
        tuple[Metric, str, Statistic | None, Statistic | None, str, tuple[Cumulative, ...]]
    ] = []
    use_cuped = definition.cuped and pre_start is not None
    shared = _calls_statistics(con, metrics, parts, values, exposures, use_cuped)
    for i, metric in enumerate(metrics):
        stats, error, daily = _metric_statistics(
            con, metric, definition, values, exposures, arms, pre_start is not None, shared.get(i)
        )
        for arm in treatments:
            c, t = stats.get(definition.control), stats.get(arm)
            series = tuple(daily.get(arm, ())) if include_daily else ()
            pending.append((metric, arm, c, t, error, series))
        if error:
            notes.append(f"{metric.title}: {error}")
    absolute, relative = [], []
    for metric, _arm, c, t, error, _series in pending:
        absolute.append(_compare(metric, c, t, method, False, definition, error))
        relative.append(_compare(metric, c, t, method, True, definition, error))
    absolute = adjust_comparisons(absolute, definition.correction)
    relative = adjust_comparisons(relative, definition.correction)
    results = []
    for (metric, arm, c, t, _e, series), a, r in zip(pending, absolute, relative, strict=True):
        results.append(
            MetricArmResult(
                metric.name, metric.title, metric.unit, metric.type, metric.lower_is_better,
                arm, c, t, a, r, _direction(metric, a), _metric_verdict(metric, arm, a, r),
                _daily_results(series, metric, method, definition),
            )
        )  # fmt: skip
    statement = interval_statement(absolute)  # the level and correction, said once
    if statement:
        notes.append(statement)
    return ExperimentResult(
        definition.key, method, True, "", definition.control, treatments, units, srm,
        tuple(results), tuple(notes),
    )  # fmt: skip


def _compare(
    metric: Metric,
    c: Statistic | None,
    t: Statistic | None,
    method: Method,
    relative: bool,
    definition: ExperimentDefinition,
    error: str,
) -> Comparison:
    if error or c is None or t is None:
        reason = error or "no data for this metric in one of the arms"
        return not_computable(reason, method, relative, definition.alpha)
    return compare(
        c,
        t,
        method,
        relative,
        definition.alpha,
        metric.lower_is_better,
        definition.alternative,
        tuning_n=definition.sequential_tuning_n,
        prior=definition.prior,
        prior_on_lift=True,
    )


def _metric_statistics(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    definition: ExperimentDefinition,
    values: Mapping[str, Any],
    exposures: Mapping[str, Mapping[dt.date, int]],
    arms: Sequence[str],
    have_pre: bool,
    daily: DailyStats | None = None,
) -> tuple[dict[str, Statistic], str, dict[str, list[Cumulative]]]:
    """Total statistic per arm, an error sentence, and cumulative (day, control, arm) rows.
    `daily`: the metric's daily statistics when a shared statement computed them already."""
    try:
        if metric.type == "quantile":
            quantiles: dict[str, Statistic] = dict(
                _quantile_statistics(con, metric, definition, values, arms)
            )
            return quantiles, "", {}
        use_cuped = definition.cuped and have_pre
        if daily is None:
            daily = _daily_statistics(con, metric, definition, values, exposures, use_cuped)
    except duckdb.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {}, f"the metric's SQL failed ({first_line})", {}
    totals = {arm: s for arm in arms if (s := _total(daily.get(arm, {}))) is not None}
    return totals, "", _cumulative_pairs(daily, arms)


def _cumulative_pairs(daily: DailyStats, arms: Sequence[str]) -> dict[str, list[Cumulative]]:
    control, out = arms[0], {}
    days = sorted({d for arm in arms for d in daily.get(arm, {})})
    for arm in arms[1:]:
        rows: list[Cumulative] = []
        c_cum: Statistic | None = None
        t_cum: Statistic | None = None
        for day in days:
            c, t = daily.get(control, {}).get(day), daily.get(arm, {}).get(day)
            c_cum = c if c_cum is None else (add_statistics(c_cum, c) if c is not None else c_cum)
            t_cum = t if t_cum is None else (add_statistics(t_cum, t) if t is not None else t_cum)
            if c_cum is not None and t_cum is not None:
                rows.append((day, c_cum, t_cum))
        out[arm] = rows
    return out


def _daily_results(
    series: tuple[Cumulative, ...], metric: Metric, method: Method, definition: ExperimentDefinition
) -> tuple[DailyResult, ...]:
    if not series:
        return ()
    return tuple(
        results_over_time(
            series,
            method,
            False,
            definition.alpha,
            metric.lower_is_better,
            definition.sequential_tuning_n,
            definition.prior,
            definition.alternative,
            prior_on_lift=True,  # the daily series is absolute: the lift's prior, rescaled
        )
    )


def experiment_over_time(
    con: duckdb.DuckDBPyConnection,
    definition: ExperimentDefinition,
    metric: Metric,
    method: Method = "sequential",
) -> dict[str, list[DailyResult]]:
    """Cumulative effect (treatment − control) and interval as of each exposure day, per
    treatment arm. Quantile metrics have no additive daily statistics: empty lists."""
    result = evaluate_experiment(con, definition, [metric], method, include_daily=True)
    return {r.arm: list(r.daily) for r in result.results}


# ------------------------------------------------------------------ discovery and planning


def discovered_experiments(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Experiments seen in `experiment_exposures` (e.g. assigned by the SDK or the demo):
    key, unit type, variants (most exposed first is not implied; sorted by name, 'control'
    first when present), units per variant, first and last exposure."""
    try:
        rows = con.execute(
            "SELECT experiment_key, coalesce(any_value(unit_type), 'call'), variant, count(*), "
            "min(exposed_at), max(exposed_at) FROM experiment_exposures "
            "GROUP BY experiment_key, variant ORDER BY experiment_key, variant"
        ).fetchall()
    except duckdb.Error:
        return []
    found: dict[str, dict[str, Any]] = {}
    for key, unit_type, variant, n, first, last in rows:
        e = found.setdefault(
            key, {"key": key, "unit_type": unit_type, "units": {}, "first": first, "last": last}
        )
        e["units"][variant] = int(n)
        e["first"], e["last"] = min(e["first"], first), max(e["last"], last)
    for e in found.values():
        names = sorted(e["units"], key=lambda v: (v != "control", v))
        e["variants"] = tuple(names)
    return list(found.values())


def daily_traffic(con: duckdb.DuckDBPyConnection, unit_type: str = "call", days: int = 7) -> float:
    """New units a day over the last `days` days of data: calls from the `calls_hourly` rollup,
    or distinct callers a day (an upper bound on new callers) from `calls`. 0 when none."""
    try:
        if unit_type == "call":
            row = con.execute(
                "SELECT sum(n), max(hour) FROM calls_hourly "
                "WHERE hour >= (SELECT max(hour) FROM calls_hourly) - to_days(CAST(? AS INTEGER))",
                [days],
            ).fetchone()
        else:
            row = con.execute(
                "SELECT count(DISTINCT caller_id), max(started_at) FROM calls "
                "WHERE started_at >= (SELECT max(started_at) FROM calls) "
                "- to_days(CAST(? AS INTEGER))",
                [days],
            ).fetchone()
    except duckdb.Error:
        return 0.0
    return float(row[0] or 0) / days if row and row[1] is not None else 0.0


@dataclass(frozen=True)
class Baseline:
    """A metric's current per-unit mean and variance, for planning."""

    computable: bool
    reason: str
    mean: float = math.nan
    variance: float = math.nan
    units: int = 0
    proportion: bool = False


def metric_baseline(
    con: duckdb.DuckDBPyConnection, metric: Metric, unit_type: str = "call", days: int = 14
) -> Baseline:
    """Per-unit mean and variance of `metric` over the last `days` days: a proportion or mean
    per call for call-level metrics with call units, otherwise a ratio of per-unit sums
    (delta-method variance, as the evaluation does)."""
    if metric.type == "quantile":
        return Baseline(False, "planning is not available for percentile metrics")
    if unit_type not in UNIT_TYPES:
        return Baseline(False, f"unit_type must be one of {', '.join(UNIT_TYPES)}")
    unit = "f.call_id" if unit_type == "call" else "c.caller_id"
    join = "" if unit_type == "call" else "JOIN calls c ON c.call_id = f.call_id"
    single = (
        metric.type in ("proportion", "mean") and metric.level == "call" and unit_type == "call"
    )
    num, den = ("f.value", "1.0") if metric.type != "ratio" else ("f.numerator", "f.denominator")
    # registry SQL and fixed fragments only; values bound as parameters
    sql = (
        f"WITH facts AS ({metric.sql}), "  # noqa: S608
        "w AS (SELECT max(ts) AS t1 FROM facts), "
        f"per_unit AS (SELECT {unit} AS unit, sum(CAST({num} AS DOUBLE)) AS y, "
        f"sum(CAST({den} AS DOUBLE)) AS d FROM facts f {join}, w "
        f"WHERE f.ts >= w.t1 - to_days(CAST($days AS INTEGER)) AND {num} IS NOT NULL "
        "GROUP BY ALL) "
        "SELECT count(*), sum(y), sum(y * y), sum(d), sum(d * d), sum(y * d) FROM per_unit"
    )
    try:
        row = con.execute(sql, {"days": days}).fetchone()
    except duckdb.Error as exc:
        return Baseline(False, f"the metric's SQL failed ({str(exc).splitlines()[0]})")
    assert row is not None  # an aggregate without GROUP BY returns its one row
    n, sy, syy, sd, sdd, syd = row
    n = int(n or 0)
    if n < 2:
        return Baseline(False, "not enough recent data for this metric")
    if single:
        # one fact per call: y is the call's value (proportions and means alike)
        stat: Statistic = SampleMean(n, float(sy), float(syy))
        if metric.type == "proportion":
            stat = Proportion(n, float(sy))
    else:
        stat = Ratio(n, float(sy), float(syy), float(sd), float(sdd), float(syd))
    if not (math.isfinite(stat.mean) and math.isfinite(stat.variance)):
        return Baseline(False, "the metric has no variance in recent data", units=n)
    return Baseline(True, "", stat.mean, stat.variance, n, metric.type == "proportion" and single)


def plan_for_metric(
    con: duckdb.DuckDBPyConnection,
    metric: Metric,
    relative_effect: float,
    arms: int = 2,
    unit_type: str = "call",
    method: str = "sequential",
    target_power: float = 0.8,
    alpha: float = 0.05,
    traffic_share: float = 1.0,
    comparisons: int = 1,
) -> tuple[PowerPlan, Baseline, float]:
    """Sample size and days needed to detect `relative_effect` on `metric` at current traffic,
    at α/`comparisons` (`planned_comparisons`: the correction the evaluation applies).
    Returns the plan, the baseline it used, and the daily units it assumed."""
    baseline = metric_baseline(con, metric, unit_type)
    daily = daily_traffic(con, unit_type)
    if not baseline.computable:
        return PowerPlan(False, baseline.reason, relative_effect, arms=arms), baseline, daily
    tuning = DEFAULT_SEQUENTIAL_TUNING_N if method == "sequential" else None
    plan = plan_experiment(
        baseline.mean,
        baseline.variance,
        relative_effect,
        daily,
        arms,
        target_power,
        alpha,
        traffic_share,
        baseline.proportion,
        tuning,
        comparisons=comparisons,
    )
    return plan, baseline, daily


def planned_comparisons(metrics: int, arms: int, correction: str = "holm") -> int:
    """How many comparisons the evaluation's correction spreads α over: every metric for
    every treatment arm (Holm's first step and Benjamini-Hochberg's strictest are α/m), or 1
    without a correction."""
    return max(metrics, 1) * max(arms - 1, 1) if correction in ("holm", "bh") else 1


def power_so_far(
    result: ExperimentResult,
    definition: ExperimentDefinition,
    metric: str,
    relative_effect: float,
    target_power: float,
    daily_units: float,
) -> MidExperimentPower | None:
    """For a running experiment, the power reached so far on `metric` (its first treatment
    arm) to detect `relative_effect`, under the evaluation's method and correction, and the
    further units and days that reach `target_power`. `daily_units` is the experiment's whole
    traffic; the two compared arms get their planned share of it. None without a result."""
    r = result.result(metric)
    if not result.computable or r is None or r.control is None or r.treatment is None:
        return None
    weights = definition.weights or {}
    arms = (result.control, r.arm)
    share = (
        sum(weights.get(a, 0.0) for a in arms) / sum(weights.values())
        if weights and sum(weights.values()) > 0
        else 2 / (len(result.treatments) + 1)
    )
    return mid_experiment_power(
        r.control,
        r.treatment,
        relative_effect,
        target_power,
        definition.alpha,
        comparisons=planned_comparisons(
            len({x.metric for x in result.results}),
            len(result.treatments) + 1,
            definition.correction,
        ),
        sequential_tuning_n=(
            definition.sequential_tuning_n if result.method == "sequential" else None
        ),
        daily_units=daily_units * share,
    )


def verdict(
    result: ExperimentResult, primary: Sequence[str], guardrails: Sequence[str] = ()
) -> str:
    """The experiment's verdict in plain language, for `primary` and `guardrails` metrics. It
    never overstates: a change is named only when its interval (or chance to win) says so,
    guardrails are named when they got worse, an SRM comes first, and a fixed-horizon test
    reminds the reader when it may be read."""
    if not result.computable:
        return f"No result yet: {result.reason}."
    lines = []
    if result.srm is not None and result.srm.flagged:
        lines.append(result.srm.message)
    for arm in result.treatments:
        mine = [r for r in result.results if r.arm == arm]
        main = [r for r in mine if r.metric in primary]
        guards = [r for r in mine if r.metric in guardrails]
        better = [r for r in main if r.direction == "better"]
        worse = [r for r in main if r.direction == "worse"]
        hurt = [r for r in guards if r.direction == "worse"]
        if better:
            lines.append(" ".join(r.verdict for r in better))
        if worse:
            lines.append(" ".join(r.verdict for r in worse))
        if not better and not worse:
            names = ", ".join(r.label for r in main) or "the primary metrics"
            lines.append(
                f"No detectable difference between {arm} and control on {names} yet; "
                "the interval still includes no change."
            )
        if hurt:
            lines.append(f"Guardrail warning: {arm} made {', '.join(r.label for r in hurt)} worse.")
        elif guards:
            lines.append(f"No guardrail got significantly worse with {arm}.")
        if better and not worse and not hurt and not (result.srm and result.srm.flagged):
            lines.append(f"The evidence favours {arm} on the primary metric.")
    if result.method == "fixed":
        lines.append("Fixed-horizon test: read it once the planned sample size is reached.")
    elif result.method == "sequential":
        lines.append("Sequential intervals stay valid however often you look.")
    return " ".join(lines)
