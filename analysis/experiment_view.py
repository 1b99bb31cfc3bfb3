"""How the Experiments page presents results: which experiment it opens on, and the results
table in words a product owner reads, every number with its unit. The interval's level and
correction are said once beside the table (`ExperimentResult.notes`), never per row."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from analysis.experiments import ExperimentResult, MetricArmResult

NOT_AVAILABLE = "—"
READINGS = {"better": "Better", "worse": "Worse", "unclear": "No clear difference yet"}


def default_experiment(
    candidates: Sequence[str], statuses: Mapping[str, str], units: Mapping[str, int]
) -> str | None:
    """The experiment the page opens on: the running one with the most exposed units (an
    experiment known only from its exposures counts as running), else the one with the most
    units, else the first candidate. Never a draft merely because it is newest."""
    if not candidates:
        return None
    order = {key: i for i, key in enumerate(candidates)}

    def most_data(keys: Iterable[str]) -> str | None:
        ranked = sorted(keys, key=lambda k: (-units.get(k, 0), order[k]))
        return ranked[0] if ranked else None

    running = [k for k in candidates if statuses.get(k, "running") == "running"]
    with_data = [k for k in candidates if units.get(k, 0) > 0]
    return most_data(running) or most_data(with_data) or candidates[0]


def p_value_text(p: float) -> str:
    """A p-value as people read it: "< 0.001" below that, else three decimals."""
    if not math.isfinite(p):
        return NOT_AVAILABLE
    if p < 0.001:
        return "< 0.001"
    return f"{min(p, 1.0):.3f}"


def number_text(value: float, signed: bool = False) -> str:
    """Three significant digits without scientific notation, thousands separated."""
    if not math.isfinite(value):
        return "unbounded" if math.isinf(value) else NOT_AVAILABLE
    sign = "+" if signed else ""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = min(max(2 - magnitude, 0), 6)
    return f"{value:{sign},.{decimals}f}"


def _level(r: MetricArmResult, value: float) -> str:
    """A value of the metric itself: a share in %, otherwise the metric's unit."""
    if r.metric_type == "proportion":
        return f"{number_text(value * 100)} %" if math.isfinite(value) else NOT_AVAILABLE
    return _with_unit(number_text(value), r.unit)


def _change(r: MetricArmResult, value: float) -> str:
    """A difference: percentage points for a share, otherwise the metric's unit."""
    if r.metric_type == "proportion":
        return _with_unit(number_text(value * 100, signed=True), "points")
    return _with_unit(number_text(value, signed=True), r.unit)


def _with_unit(text: str, unit: str) -> str:
    if text == NOT_AVAILABLE or not unit:
        return text
    return f"{text} %" if unit == "%" else f"{text} {unit}"


def results_table(result: ExperimentResult, primary: Sequence[str]) -> pd.DataFrame:
    """One row per metric and variant, every cell text with its unit."""
    bayesian = result.method == "bayesian"
    rows = []
    for r in result.results:
        c, rel = r.absolute, r.relative
        row = {
            "Metric": r.label,
            "Role": "Primary" if r.metric in primary else "Guardrail",
            "Variant": r.arm,
            "Control value": _level(r, c.control_mean),
            "Variant value": _level(r, c.treatment_mean),
        }
        if c.computable:
            low, high = _change(r, c.ci_low), _change(r, c.ci_high)
            unit = "points" if r.metric_type == "proportion" else r.unit
            if unit and low.endswith(f" {unit}"):  # the unit once, after the range
                low = low[: -len(unit) - 1]
            row |= {
                "Change": _change(r, c.effect),
                "Relative change": (
                    f"{number_text(rel.effect * 100, signed=True)} %"
                    if rel.computable
                    else NOT_AVAILABLE
                ),
                "Likely range of the change": f"{low} to {high}",
            }
            if bayesian:
                row["Chance to beat control"] = f"{c.chance_to_beat_control * 100:.0f} %"
            else:
                row["p-value"] = p_value_text(c.p_value)
            row["Reading"] = READINGS.get(r.direction, r.direction)
        else:
            row |= {
                "Change": NOT_AVAILABLE,
                "Relative change": NOT_AVAILABLE,
                "Likely range of the change": NOT_AVAILABLE,
                ("Chance to beat control" if bayesian else "p-value"): NOT_AVAILABLE,
                "Reading": f"Cannot compare yet: {c.reason}",
            }
        rows.append(row)
    return pd.DataFrame(rows)
