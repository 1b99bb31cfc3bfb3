"""Result dataclasses shared by every test. A result is always returned, never an exception:
`computable=False` carries the reason and never claims significance."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from analysis.experiment_rules import Alternative, Method

NAN = math.nan


@dataclass(frozen=True)
class EffectEstimate:
    """Point estimate and standard error of treatment − control (or the relative lift)."""

    computable: bool
    reason: str
    relative: bool
    control_mean: float = NAN
    treatment_mean: float = NAN
    effect: float = NAN
    se: float = NAN
    dof: float = NAN
    theta: float | None = None  # CUPED coefficient when regression adjustment was used
    note: str = ""  # e.g. "CUPED not applied: the pre-period has no variance"


@dataclass(frozen=True)
class Comparison:
    """One treatment arm against control for one metric, by one method.

    `effect` is treatment − control (absolute) or (treatment − control)/control (relative).
    `significant` means: frequentist, the interval excludes the null; Bayesian, the chance to
    beat control passed the decision threshold in either direction.
    """

    computable: bool
    reason: str
    method: Method
    relative: bool
    alpha: float
    alternative: Alternative = "two-sided"
    control_mean: float = NAN
    treatment_mean: float = NAN
    effect: float = NAN
    se: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    p_value: float = NAN
    dof: float = NAN
    significant: bool = False
    chance_to_beat_control: float = NAN  # Bayesian only
    risk_control: float = NAN  # expected loss of keeping control (Bayesian)
    risk_treatment: float = NAN  # expected loss of shipping treatment (Bayesian)
    theta: float | None = None
    note: str = ""
    p_value_unadjusted: float = NAN  # set when a multiple-testing correction was applied
    correction: str = ""
    # What a correction needs to rebuild the interval at another level: the interval's own
    # α (alpha, or the per-comparison α after a correction), and for sequential results the
    # units over both arms and the tuning N* of the confidence sequence.
    interval_alpha: float = NAN
    units: int = 0
    tuning_n: float = NAN

    @property
    def level(self) -> float:
        """The confidence (or credible) level of [ci_low, ci_high], e.g. 0.95."""
        a = self.interval_alpha if math.isfinite(self.interval_alpha) else self.alpha
        return 1 - a


def not_computable(
    reason: str, method: Method, relative: bool, alpha: float, **fields: Any
) -> Comparison:
    return Comparison(False, reason, method, relative, alpha, **fields)


def with_fields(result: Comparison, **fields: Any) -> Comparison:
    return replace(result, **fields)
