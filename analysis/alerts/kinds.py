"""The kinds of alert rule, by name. A new kind is one module defining a `RuleKind` (its
parameters, `check` and, if it has a past, `history`) and one entry here; docs/alerts.md says
how."""

from __future__ import annotations

from analysis.alerts.anomaly import ANOMALY
from analysis.alerts.error_groups import ERROR_GROUP
from analysis.alerts.experiments import EXPERIMENT
from analysis.alerts.model import RuleKind
from analysis.alerts.probes import PROBE_DOWN
from analysis.alerts.security import SECURITY
from analysis.alerts.slo import SLO_BURN
from analysis.alerts.threshold import THRESHOLD
from analysis.alerts.workbench import COLLECTOR, PUBLISH

KINDS: dict[str, RuleKind] = {
    kind.name: kind
    for kind in (
        THRESHOLD,
        SLO_BURN,
        PROBE_DOWN,
        ERROR_GROUP,
        ANOMALY,
        SECURITY,
        EXPERIMENT,
        COLLECTOR,
        PUBLISH,
    )
}
