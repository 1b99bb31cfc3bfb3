"""Sample ratio mismatch: Pearson χ² goodness of fit of observed units per arm against the
planned split (gbstats `utils.check_srm`, F9): χ² = Σ (O − E)²/E, E_i = w_i/Σw · ΣO.
Flagged at p < 0.001 (GrowthBook DEFAULT_SRM_THRESHOLD, also Eppo's and Statsig's default).
Unlike gbstats, arms with planned weight 0 are dropped from the degrees of freedom too; but any
unit in such an arm (a variant nobody planned, the classic assignment bug) flags a mismatch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from scipy.stats import chi2 as chi2_dist

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    computable: bool
    reason: str
    p_value: float = math.nan
    chi2: float = math.nan
    dof: int = 0
    flagged: bool = False
    observed: dict[str, int] = field(default_factory=dict)
    expected: dict[str, float] = field(default_factory=dict)
    threshold: float = SRM_THRESHOLD
    unplanned: dict[str, int] = field(default_factory=dict)  # units in arms planned at 0

    @property
    def message(self) -> str:
        if self.unplanned:
            names = ", ".join(f"{k} ({v:,})" for k, v in sorted(self.unplanned.items()))
            return (
                f"Sample ratio mismatch: units were assigned to variants that are not in the "
                f"plan: {names}. Fix assignment before trusting the results."
            )
        if not self.computable:
            return f"Traffic split not checked: {self.reason}."
        if self.flagged:
            return (
                f"Sample ratio mismatch (p = {self.p_value:.2g}): the arms did not receive the "
                "planned share of traffic, so results may be biased. Fix assignment before "
                "trusting them."
            )
        return f"Traffic split matches the plan (p = {self.p_value:.2g})."


def srm_check(
    observed: Mapping[str, int],
    weights: Mapping[str, float] | None = None,
    threshold: float = SRM_THRESHOLD,
) -> SrmResult:
    """χ² test of observed units per arm against planned weights (equal when omitted)."""
    obs = {k: int(v) for k, v in observed.items()}
    w = {k: float(weights.get(k, 0.0)) for k in obs} if weights else {k: 1.0 for k in obs}
    if any(v < 0 for v in w.values()) or any(v < 0 for v in obs.values()):
        return SrmResult(False, "counts and weights must not be negative", observed=obs)
    active = {k: w[k] for k in obs if w[k] > 0}
    unplanned = {k: v for k, v in obs.items() if w[k] == 0 and v > 0}
    total_w = sum(active.values())
    total = sum(obs[k] for k in active)
    if len(active) < 2:
        return SrmResult(False, "fewer than two arms with traffic planned", observed=obs,
                         flagged=bool(unplanned), unplanned=unplanned)  # fmt: skip
    if total == 0:
        return SrmResult(False, "no units have been exposed yet", observed=obs,
                         flagged=bool(unplanned), unplanned=unplanned)  # fmt: skip
    expected = {k: active[k] / total_w * total for k in active}
    stat = sum((obs[k] - expected[k]) ** 2 / expected[k] for k in active)
    dof = len(active) - 1
    p = float(chi2_dist.sf(stat, dof))
    flagged = p < threshold or bool(unplanned)
    return SrmResult(True, "", p, float(stat), dof, flagged, obs, expected, threshold, unplanned)
