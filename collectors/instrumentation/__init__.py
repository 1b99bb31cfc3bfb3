"""The monitoring SDK a voice agent imports: `configure_monitoring(app)` and six monitors.

Light on purpose: importing it pulls in only the standard library (httpx, psutil and
supabase-py are imported lazily by the background workers that need them).
"""

from collectors.instrumentation.config import MonitoringConfigError
from collectors.instrumentation.errors import error_monitor
from collectors.instrumentation.experiments import assign, experiments
from collectors.instrumentation.health import health_monitor
from collectors.instrumentation.infrastructure import infrastructure_monitor
from collectors.instrumentation.integration import (
    configure_monitoring,
    flush_monitoring,
    monitoring_stats,
    reset_monitoring,
    shutdown_monitoring,
)
from collectors.instrumentation.livekit_hook import attach_livekit_session
from collectors.instrumentation.middleware import MonitoringMiddleware
from collectors.instrumentation.performance import performance_monitor
from collectors.instrumentation.security import security_monitor
from collectors.instrumentation.user_experience import user_experience_monitor

__all__ = [
    "MonitoringConfigError",
    "MonitoringMiddleware",
    "assign",
    "attach_livekit_session",
    "configure_monitoring",
    "error_monitor",
    "experiments",
    "flush_monitoring",
    "health_monitor",
    "infrastructure_monitor",
    "monitoring_stats",
    "performance_monitor",
    "reset_monitoring",
    "security_monitor",
    "shutdown_monitoring",
    "user_experience_monitor",
]
