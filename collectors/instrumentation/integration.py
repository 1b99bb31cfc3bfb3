"""configure_monitoring: one call that wires the six monitors, the sink and the middleware."""

from __future__ import annotations

import atexit
import logging
import time
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
from collectors.instrumentation.live import live
from collectors.instrumentation.middleware import MonitoringMiddleware
from collectors.instrumentation.performance import performance_monitor
from collectors.instrumentation.pipeline import call_within, iso_utc
from collectors.instrumentation.redact import scrub
from collectors.instrumentation.runtime import invalid_calls_total, state
from collectors.instrumentation.security import security_monitor
from collectors.instrumentation.sinks import MemorySink, NullSink, SpoolSink, SupabaseSink
from collectors.instrumentation.user_experience import user_experience_monitor

log = logging.getLogger("collectors.instrumentation")

__all__ = [
    "configure_monitoring",
    "flush_monitoring",
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
        app.add_middleware(MonitoringMiddleware, host_app=app)
        return app
    return MonitoringMiddleware(app)


def _start() -> None:
    state.pipeline.start()
    health_monitor.start_resource_sampling()
    check_runner.start()
    experiments.start()


def on_startup() -> None:
    """ASGI lifespan startup: (re)start the workers (a forked worker process, or an app
    started again in the same process), record readiness."""
    if state.configured and state.config["enabled"]:
        if not state.pipeline.workers_running():
            _start()
        health_monitor.mark_ready()


def on_shutdown() -> None:
    """ASGI lifespan shutdown (run on a thread, never on the event loop): ship what is
    queued and close the sink (sealing spool files so the collectors can read them), within
    `sink.shutdown_timeout` seconds."""
    if not state.configured:
        return
    timeout = state.config["sink"]["shutdown_timeout"]
    deadline = time.monotonic() + timeout
    if not state.pipeline.flush(timeout):
        log.warning("monitoring: the shutdown flush did not finish within %.1f s", timeout)
    call_within(state.pipeline.sink.close, deadline, "close")


def flush_monitoring(timeout: float = 10.0) -> bool:
    """Process and ship every queued event now and wait for queued alerts (scripts, tests).
    Safe from any thread at any time; returns False if `timeout` seconds were not enough."""
    deadline = time.monotonic() + timeout
    done = state.pipeline.flush(timeout)
    alert_manager.join(max(0.0, deadline - time.monotonic()))
    return done


def shutdown_monitoring(flush: bool = True, timeout: float = 10.0) -> bool:
    """Stop the background workers, ship what is queued, and close the sink, in at most
    `timeout` seconds (a check or a sink still running then is left to finish on its own
    daemon thread). Returns False if the time was not enough."""
    deadline = time.monotonic() + timeout
    # Checks and experiment refreshes may hang on the network: they get little of the time.
    check_runner.stop(timeout=min(0.5, timeout / 10))
    experiments.stop(timeout=min(0.5, timeout / 10))
    done = state.pipeline.stop(flush=flush, timeout=max(0.0, deadline - time.monotonic()))
    alert_manager.join(max(0.0, deadline - time.monotonic()))
    return done


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
    live.clear()


def reset_monitoring() -> None:
    """Forget all configuration, handlers and queued events (tests, notebooks)."""
    shutdown_monitoring(flush=False, timeout=5.0)
    _reset_monitors()
    alert_manager.reset()
    state.pipeline.clear()
    state.pipeline.reset_counters()
    state.pipeline.sink = NullSink()
    with state.invalid_lock:
        state.invalid_calls.clear()
    state.config = config_module.DEFAULTS
    state.release = state.service = None
    state.configured = False


def monitoring_stats() -> dict[str, Any]:
    """Counters a user can check. The books add up: `tracked` rows = `shipped` (reached the
    sink's destination) + `spooled` (on disk, sent when the sink answers) + `dropped` (by
    reason) + `pending` (in memory). `queued` events are not rows yet."""
    b = state.pipeline.books()
    sink = b["sink"]
    invalid = invalid_calls_total()
    dropped = {
        "queue_full": b["dropped_queue"],
        "invalid": invalid,
        "processing": b["processing_errors"],
        "outbox_full": b["dropped_outbox"],
        "sink_error": b["dropped_sink_error"],
    }
    for reason, n in sink.get("dropped", {}).items():
        dropped[reason] = dropped.get(reason, 0) + n
    dropped_total = sum(dropped.values())
    tracked = b["rows_built"] + b["dropped_queue"] + invalid + b["processing_errors"]
    shipped = sink.get("shipped", 0)
    spooled = sink.get("spooled", 0)
    pending = b["outbox"] + b["in_write"] + sink.get("pending", 0)
    failing_since = sink.get("failing_since")
    last_error = sink.get("last_error")
    return {
        "tracked": tracked,
        "shipped": shipped,
        "spooled": spooled,
        "dropped_total": dropped_total,
        "pending": pending,
        "balanced": tracked == shipped + spooled + dropped_total + pending,
        "dropped": dropped,
        "queued": b["queued"],
        "processed": b["processed"],
        "worker_restarts": b["worker_restarts"],
        "sink": type(state.pipeline.sink).__name__,
        "sink_up": bool(sink.get("up", True)),
        "sink_failing_since": None if failing_since is None else iso_utc(failing_since),
        "sink_last_error": None if last_error is None else scrub(str(last_error), 300),
        "replayed": sink.get("replayed", 0),
        "invalid_calls": invalid,
        "alerts_raised": alert_manager.raised,
        "alerts_suppressed": alert_manager.suppressed,
        "alert_handler_failures": alert_manager.handler_failures,
        "errors_sampled_out": error_monitor.sampled_out,
        "errors_ignored": error_monitor.ignored_count,
        "requests_blocked": security_monitor.blocked,
        # earlier names of the same counters
        "outbox": b["outbox"],
        "dropped_queue": b["dropped_queue"],
        "dropped_outbox": b["dropped_outbox"],
        "processing_errors": b["processing_errors"],
        "rows_lost_sink": b["dropped_sink_error"],
        "sink_dropped": sink.get("dropped", {}).get("disk_full", 0),
    }


@atexit.register
def _flush_at_exit() -> None:
    if state.configured:
        try:
            shutdown_monitoring(flush=True, timeout=state.config["sink"]["shutdown_timeout"])
        except Exception:  # noqa: BLE001 - never fail interpreter shutdown
            pass
