"""The metric catalogue: what can be measured, and its values over time.

- definition: what a metric is (`Metric`, its `Facts` and `FromRollup` readings) and the
  validation of user-defined ones (`metric_from_config`).
- builtin: the built-in entries and the catalogue every consumer reads (`catalogue`,
  `metrics_on`, `metric_registry` for experiments).
- series: a metric's value per period or over a window, with its sufficient statistics.
- sandbox: metric SQL runs read-only over the snapshot (`lock_down`, `check_metric_sql`).
"""

from analysis.metrics.builtin import (
    BUILTIN,
    builtin_metrics,
    catalogue,
    metric_registry,
    metrics_on,
)
from analysis.metrics.definition import (
    KINDS,
    LEVELS,
    METRIC_TYPES,
    SURFACES,
    BuiltinLevel,
    Facts,
    FromRollup,
    Kind,
    Level,
    Metric,
    MetricConfigError,
    MetricType,
    Surface,
    metric_from_config,
)
from analysis.metrics.sandbox import check_metric_sql, lock_down
from analysis.metrics.series import (
    MetricValue,
    hourly_values,
    metric_minutes,
    metric_series,
    metric_value,
)

__all__ = [
    "BUILTIN",
    "KINDS",
    "LEVELS",
    "METRIC_TYPES",
    "SURFACES",
    "BuiltinLevel",
    "Facts",
    "FromRollup",
    "Kind",
    "Level",
    "Metric",
    "MetricConfigError",
    "MetricType",
    "Surface",
    "MetricValue",
    "builtin_metrics",
    "catalogue",
    "check_metric_sql",
    "hourly_values",
    "lock_down",
    "metric_from_config",
    "metric_minutes",
    "metric_registry",
    "metric_series",
    "metric_value",
    "metrics_on",
]
