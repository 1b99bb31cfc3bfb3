"""configure_monitoring: one call that wires the six monitors, the sink and the middleware."""

from __future__ import annotations

import atexit
import logging
import os
from pathlib import Path
from typing import Any

from collectors.instrumentation import config as config_module
from collectors.instrumentation.alerts import alert_manager
from collectors.instrumentation.checks import check_runner
from collectors.instrumentation.config import MonitoringConfigError
from collectors.instrumentation.errors import error_monitor
from collectors.instrumentation.experiments import experiments
from collectors.instrumentation.health import health_monitor
from collectors.instrumentation.infrastructure import infrastructure_monitor
from collectors.instrumentation.middleware import MonitoringMiddleware
from collectors.instrumentation.performance import performance_monitor
from collectors.instrumentation.runtime import invalid_calls_total, state
from collectors.instrumentation.security import security_monitor
from collectors.instrumentation.sinks import MemorySink, NullSink, SpoolSink, SupabaseSink
from collectors.instrumentation.user_experience import user_experience_monitor

log = logging.getLogger("collectors.instrumentation")

__all__ = [
    "configure_monitoring",
    "shutdown_monitoring",
    "reset_monitoring",
    "monitoring_stats",
    "MonitoringConfigError",
    "MonitoringMiddleware",
]


def _supabase_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("supabase") is not None


def build_sink(cfg: dict[str, Any]) -> Any:
    """The sink the configuration asks for (`auto`: Supabase when configured, else spool)."""
    s = cfg["sink"]
    kind = s["type"]
    sb = cfg["supabase"]
    spool_kw = {
        "max_bytes": s["spool_max_bytes"],
        "file_bytes": s["spool_file_bytes"],
        "rotate_seconds": s["spool_rotate_seconds"],
    }
    if kind == "auto":
        kind = "supabase" if sb["url"] and sb["api_key"] and _supabase_available() else "spool"
    if kind == "supabase":
        if not sb["url"] or not sb["api_key"]:
            raise MonitoringConfigError(
                "Monitoring config key 'sink.type' is 'supabase' but SUPABASE_URL and "
                "SUPABASE_API_KEY are not both set."
            )
        if not _supabase_available():
            raise MonitoringConfigError(
                "Monitoring config key 'sink.type' is 'supabase' but supabase-py is not "
                "installed: pip install 'voice-workbench[supabase]'."
            )
        return SupabaseSink(
            sb["url"],
            sb["api_key"],
            Path(s["spool_dir"]) / "_supabase_outbox",
            timeout=s["supabase_timeout"],
            **spool_kw,
        )
    if kind == "spool":
        return SpoolSink(s["spool_dir"], **spool_kw)
    if kind == "memory":
        return MemorySink()
    return NullSink()


def configure_monitoring(
    app: Any = None, config: dict[str, Any] | None = None, *, sink: Any = None
) -> Any:
    """Configure every monitor from `config` (and the environment), start the background
    workers and add the middleware to `app`. Returns `app` (wrapped if it is a plain ASGI
    callable without `add_middleware`). Raises MonitoringConfigError naming a bad key.
    `sink` overrides the configured sink (any object with write/tick/flush/close)."""
    cfg = config_module.load(config)
    new_sink = sink if sink is not None else build_sink(cfg)

    if state.configured:
        shutdown_monitoring(flush=True)
        _reset_monitors()
    state.config = cfg
    state.release = cfg["release"]
    state.service = cfg["service"]

    health_monitor.configure(cfg["health"])
    performance_monitor.configure(cfg["performance"])
    error_monitor.configure(cfg["errors"])
    security_monitor.configure(cfg["security"])
    infrastructure_monitor.configure(cfg["infrastructure"])
    alert_manager.configure(
        cfg["alerts"]["webhook_url"],
        cfg["alerts"]["webhook_timeout"],
        cfg["alerts"]["webhook_retries"],
        cfg["alerts"]["cooldown"],
    )
    experiments.configure(cfg["experiments"], cfg["supabase"])

    p = state.pipeline
    p.sink = new_sink
    p.max_queue = cfg["sink"]["max_queue"]
    p.max_outbox = cfg["sink"]["max_outbox"]
    p.batch_size = cfg["sink"]["batch_size"]
    p.flush_interval = cfg["sink"]["flush_interval"]
    state.configured = True
    health_monitor.mark_configured()
    if cfg["enabled"]:
        _start()

    if app is None or not cfg["enabled"]:
        return app
    if hasattr(app, "add_middleware"):
        app.add_middleware(MonitoringMiddleware)
        return app
    return MonitoringMiddleware(app)


def _start() -> None:
    state.pipeline.start()
    health_monitor.start_resource_sampling()
    check_runner.start()
    experiments.start()


def on_startup() -> None:
    """ASGI lifespan startup: restart workers in a forked worker process, record readiness."""
    if state.configured and state.config["enabled"]:
        if state.pipeline._pid != os.getpid():
            _start()
        health_monitor.mark_ready()


def on_shutdown() -> None:
    if state.configured:
        state.pipeline.flush()
        try:
            state.pipeline.sink.close()  # seal spool files so the collectors can read them
        except Exception:  # noqa: BLE001
            log.exception("monitoring: closing the sink failed")


def flush_monitoring(timeout: float = 10.0) -> None:
    """Process and ship every queued event now and wait for queued alerts (scripts, tests)."""
    state.pipeline.flush(timeout)
    alert_manager.join(timeout)


def shutdown_monitoring(flush: bool = True, timeout: float = 10.0) -> None:
    """Stop the background workers, ship what is queued, and close the sink."""
    check_runner.stop()
    experiments.stop()
    state.pipeline.stop(flush=flush)
    alert_manager.join(timeout)


def _reset_monitors() -> None:
    check_runner.reset()
    for m in (
        health_monitor,
        performance_monitor,
        error_monitor,
        security_monitor,
        infrastructure_monitor,
        user_experience_monitor,
    ):
        m.reset()
    experiments.reset()


def reset_monitoring() -> None:
    """Forget all configuration, handlers and queued events (tests, notebooks)."""
    shutdown_monitoring(flush=False)
    _reset_monitors()
    alert_manager.reset()
    state.pipeline.queue.clear()
    state.pipeline.outbox.clear()
    state.pipeline.stats.clear()
    state.pipeline.sink = NullSink()
    state.invalid_calls.clear()
    state.config = config_module.DEFAULTS
    state.release = state.service = None
    state.configured = False


def monitoring_stats() -> dict[str, Any]:
    """Counters a user can check: queued, dropped and invalid events, alerts, sink state."""
    p = state.pipeline
    sink = p.sink
    return {
        "queued": len(p.queue),
        "outbox": len(p.outbox),
        **dict(p.stats),
        "invalid_calls": invalid_calls_total(),
        "alerts_raised": alert_manager.raised,
        "alerts_suppressed": alert_manager.suppressed,
        "alert_handler_failures": alert_manager.handler_failures,
        "sink": type(sink).__name__,
        "sink_dropped": getattr(sink, "dropped", 0),
        "errors_sampled_out": error_monitor.sampled_out,
        "errors_ignored": error_monitor.ignored_count,
        "requests_blocked": security_monitor.blocked,
    }


@atexit.register
def _flush_at_exit() -> None:
    if state.configured:
        try:
            shutdown_monitoring(flush=True, timeout=5.0)
        except Exception:  # noqa: BLE001 - never fail interpreter shutdown
            pass
