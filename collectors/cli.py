"""The `workbench` command: run the workbench, the collectors service, and one-off jobs."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported inside the commands at run time, so `workbench --help` starts fast
    from collectors.config import WorkbenchConfig
    from collectors.control import ControlStore
    from collectors.service import DataPaths, Job

log = logging.getLogger("workbench")


def _paths(args: argparse.Namespace) -> DataPaths:
    from collectors.service import DataPaths

    return DataPaths(Path(args.data_dir).resolve())


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _config(args: argparse.Namespace) -> WorkbenchConfig | None:
    """The validated configuration, or None after printing each problem in one sentence."""
    from collectors.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _jobs(args: argparse.Namespace) -> dict[str, Job] | None:
    """The configured jobs, or None after printing each configuration problem."""
    from collectors.jobs import jobs_from

    config = _config(args)
    return None if config is None else jobs_from(config, _paths(args).root)


def cmd_serve(args: argparse.Namespace) -> int:
    from collectors.jobs import jobs_from, poll_tasks
    from collectors.service import CollectorService
    from collectors.warehouse import WarehouseLocked

    config = _config(args)
    if config is None:
        return 2
    try:
        service = CollectorService(
            _paths(args),
            jobs_from(config, _paths(args).root),
            poll_seconds=args.poll,
            run_timeout_s=args.run_timeout,
        )
    except WarehouseLocked:
        print(
            f"Another workbench service already holds {_paths(args).warehouse}; "
            "stop it first or use `workbench collect`.",
            file=sys.stderr,
        )
        return 2
    service.poll_tasks = poll_tasks(config, service.control)
    from collectors.weekly_reports import WeeklyReports

    service.poll_tasks.append(WeeklyReports(service.paths.root, config.metrics).tick)
    if config.alerts.enabled:
        from collectors.alerts.runner import Alerting, receivers_from

        receivers = receivers_from(config.alerts, config.secrets)
        service.use_alerting(Alerting(service.paths.root, config.alerts, receivers, config.metrics))
    signal.signal(signal.SIGTERM, lambda *_: service.stop())
    signal.signal(signal.SIGINT, lambda *_: service.stop())
    log.info("collectors service running; data in %s", service.paths.root)
    service.serve_forever()
    return 0


def _print_progress(job: str, progress: Mapping[str, Any] | None, started: float) -> None:
    if not progress or progress.get("state") != "running":
        return
    _progress_bar(job, progress.get("rows_read") or 0, progress, started)


def _progress_bar(job: str, rows: int, progress: Mapping[str, Any], started: float) -> None:
    """One self-overwriting line: a bar when the source knows its total, rows and rate."""
    rate = rows / max(time.monotonic() - started, 1e-6)
    done, total = progress.get("done"), progress.get("total")
    bar = ""
    if done is not None and total:
        filled = int(30 * min(1.0, done / total))
        bar = f" [{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,}"
    print(f"\r{job}:{bar} {rows:,} rows ({rate:,.0f} rows/s)", end="", file=sys.stderr, flush=True)


def cmd_collect(args: argparse.Namespace) -> int:
    from collectors.control import ControlStore
    from collectors.warehouse import WarehouseLocked, open_warehouse

    paths = _paths(args)
    try:
        open_warehouse(paths.warehouse).close()
    except WarehouseLocked:
        return _hand_over(ControlStore(paths.control), args.source)
    from collectors.engine import recover_interrupted_runs
    from collectors.service import CollectorService, seed_schedules

    jobs = _jobs(args)
    if jobs is None:
        return 2
    if args.source not in jobs:
        print(
            f"No source named {args.source!r}; configured sources: {', '.join(jobs)}.",
            file=sys.stderr,
        )
        return 2
    try:
        service = CollectorService(paths, jobs)
    except WarehouseLocked:  # the service started in between
        return _hand_over(ControlStore(paths.control), args.source)
    seed_schedules(service.control, jobs)  # so the app lists it even before `serve` runs
    started = time.monotonic()
    service.on_progress = lambda job, rows, progress: _progress_bar(job, rows, progress, started)
    try:
        recover_interrupted_runs(service.con)
        summary = service.run_job(args.source)
    finally:
        service.con.close()
    print(file=sys.stderr)
    if summary is None:
        print(
            f"{args.source}: failed: timed out after {service.run_timeout_for(args.source):g} s "
            "without committing a batch (is the source reachable?)"
        )
        return 1
    print(
        f"{args.source}: {summary.status}, {summary.rows_read:,} read, "
        f"{summary.rows_inserted:,} new, {summary.rows_updated:,} updated, "
        f"{summary.rows_rejected:,} rejected" + (f"; {summary.error}" if summary.error else "")
    )
    return 0 if summary.status in ("ok", "partial") else 1


def _hand_over(control: ControlStore, source: str) -> int:
    """The service owns the warehouse: ask it to run `source` and follow the request."""
    request_id = control.request_run(source)
    print(
        f"The collectors service is running; asked it to run {source} (request {request_id}).",
        file=sys.stderr,
    )
    started = time.monotonic()
    while True:
        request = control.request(request_id)
        if request and request["status"] not in ("pending", "running"):
            print(file=sys.stderr)
            print(
                f"{source}: {request['status']}"
                + (f": {request['message']}" if request["message"] else "")
            )
            return 0 if request["status"] in ("ok", "partial") else 1
        _print_progress(source, control.progress().get(source), started)
        time.sleep(0.5)


def cmd_publish(args: argparse.Namespace) -> int:
    from collectors.publish import publish
    from collectors.warehouse import WarehouseLocked, open_warehouse

    paths = _paths(args)
    try:
        con = open_warehouse(paths.warehouse)
    except WarehouseLocked:
        print("The collectors service is running and publishes after every run.", file=sys.stderr)
        return 2
    try:
        if args.full:
            (paths.serving / "manifest.json").unlink(missing_ok=True)
        result = publish(con, paths.serving)
    finally:
        con.close()
    print(
        f"published snapshot v{result.version}: {result.days_written} day partitions, "
        f"{result.files_written} files in {result.seconds:.2f}s"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from collectors.control import ControlStore
    from collectors.serving_format import read_manifest

    paths = _paths(args)
    control = ControlStore(paths.control)
    manifest = read_manifest(paths.serving) or {}
    info = control.service_info()
    progress = control.progress()
    print(f"service pid: {info.get('pid') or 'not running'}; heartbeat {info.get('heartbeat')}")
    print(f"snapshot v{manifest.get('version', 0)} published {manifest.get('published_at')}")
    failing = info.get("publish_error")
    if failing:
        print(
            f"publishing has failed {failing['attempts']} time(s) since {failing['since']}: "
            f"{failing['message']}; next attempt {failing['retry_at']}"
        )
    for name, s in control.schedules().items():
        fresh = manifest.get("freshness", {}).get(name, {})
        live = progress.get(name) or {}
        hung = f"; hung: {live.get('message')}" if live.get("state") == "hung" else ""
        print(
            f"  {name}: {s.describe()}{'' if s.enabled else ' (paused)'}; last run "
            f"{fresh.get('last_run')} {fresh.get('last_status') or ''}{hung}"
        )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start the collectors service and the Streamlit app; Ctrl-C stops both."""
    data_dir = str(Path(args.data_dir).resolve())
    env = {**os.environ, "WORKBENCH_DATA_DIR": data_dir}
    if args.config:  # the app reads its metrics from the same file
        env["WORKBENCH_CONFIG"] = str(Path(args.config).resolve())
    main_py = Path(__file__).resolve().parent.parent / "app" / "main.py"
    if _jobs(args) is None:  # say what is wrong with the config before starting anything
        return 2
    config_args = ["--config", args.config] if args.config else []
    service = subprocess.Popen(
        [sys.executable, "-m", "collectors.cli", "--data-dir", data_dir, *config_args, "serve"],
        env=env,
    )
    app = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(main_py),
            "--server.address",
            args.host,
            "--server.port",
            str(args.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
        ],
        env=env,
        cwd=main_py.parent.parent,
    )
    print(
        f"Workbench starting on http://{args.host}:{args.port} (data in {data_dir}); "
        "Ctrl-C stops it.",
        file=sys.stderr,
    )
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and service.poll() is None and app.poll() is None:
            time.sleep(0.3)
    finally:
        for proc in (app, service):
            if proc.poll() is None:
                proc.terminate()
        for proc in (app, service):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()  # safe: every batch is committed atomically
    return 0 if stopping else 1


def cmd_report(args: argparse.Namespace) -> int:
    """Write the release benchmark report and the weekly report from the published snapshot
    (safe while serving)."""
    from analysis.benchmarks import BenchmarkSettings, Slice, compare_periods, releases
    from analysis.report import benchmark_csv, benchmark_html
    from collectors.snapshot import open_snapshot

    if args.weekly:
        code = _weekly_report(args)
        if code or args.weekly_only:
            return code
    con = open_snapshot(_paths(args).serving).con
    names = [r for r, _ in releases(con)]
    candidate = args.release or (names[-1] if names else None)
    if candidate is not None and args.baseline is None and candidate in names:
        i = names.index(candidate)
        baseline = names[i - 1] if i > 0 else None
    else:
        baseline = args.baseline
    missing = [r for r in (baseline, candidate) if r is not None and r not in names]
    if missing or baseline is None or candidate is None:
        known = ", ".join(names) or "none yet"
        what = f"release {missing[0]!r} is not in the data" if missing else "need two releases"
        print(f"Cannot write the report: {what}; known releases: {known}.", file=sys.stderr)
        return 2
    settings = BenchmarkSettings(
        practical_threshold=args.threshold / 100,
        alpha=args.alpha,
        adjust_for_load=not args.raw,
        exclude_outages=not args.with_outages,
    )
    result = compare_periods(
        con, Slice(baseline, release=baseline), Slice(candidate, release=candidate), settings
    )
    Path(args.out).write_text(
        benchmark_html([result], settings, title=f"Benchmark: {candidate} vs {baseline}"),
        encoding="utf-8",
    )
    if args.csv:
        Path(args.csv).write_text(benchmark_csv([result]), encoding="utf-8", newline="")
    print(
        f"{candidate} vs {baseline}: {len(result.regressions)} regression(s) flagged; "
        f"wrote {args.out}" + (f" and {args.csv}" if args.csv else "")
    )
    return 0


def _weekly_report(args: argparse.Namespace) -> int:
    import datetime as dt

    from collectors.weekly_reports import weekly_report_page, write_atomically

    week_end = None
    if args.week_ending:
        try:
            week_end = dt.datetime.fromisoformat(args.week_ending)
        except ValueError:
            print(
                f"--week-ending {args.week_ending!r} is not a date (YYYY-MM-DD).", file=sys.stderr
            )
            return 2
    config = _config(args)
    made = weekly_report_page(
        _paths(args).root, week_end, config.metrics if config is not None else ()
    )
    if made is None:
        print("Cannot write the weekly report: no data has been published yet.", file=sys.stderr)
        return 2
    end, page = made
    write_atomically(Path(args.weekly), page)
    print(f"weekly report for the week ending {end:%Y-%m-%d} (Monday, UTC): wrote {args.weekly}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Monitoring and continuous-improvement workbench for voice agents.",
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("WORKBENCH_DATA_DIR", "data"),
        help="folder for the warehouse, serving snapshot and control store (default: data)",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="configuration file (default: $WORKBENCH_CONFIG, else workbench.toml if present)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "up",
        help="start the collectors service and the app together",
        description="Start the collectors service and the Streamlit app; Ctrl-C stops both.",
    )
    p.add_argument(
        "--host",
        default=os.environ.get("WORKBENCH_HOST", "127.0.0.1"),
        help="address the app binds to (default 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("WORKBENCH_PORT", "8501")),
        help="app port (default 8501)",
    )
    p.set_defaults(func=cmd_up)

    p = sub.add_parser(
        "serve",
        help="run the collectors service (owns the warehouse)",
        description="Run every configured source on its schedule and publish "
        "the serving snapshot after each run.",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=2.0,
        help="seconds between reads of the control store (default 2)",
    )
    p.add_argument(
        "--run-timeout",
        type=float,
        default=300.0,
        help="abandon a run that commits no batch for this many seconds and report its source "
        "as hung (default 300; a source's schedule or the Collectors page may set its own)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "collect",
        help="run one source once",
        description="Run one source once. While the service runs, the request "
        "is handed to it and followed to the end.",
    )
    p.add_argument("source", help="the source's name, e.g. demo")
    p.set_defaults(func=cmd_collect)

    p = sub.add_parser(
        "publish",
        help="publish the serving snapshot now",
        description="Publish what changed since the last snapshot (the service "
        "does this after every run).",
    )
    p.add_argument("--full", action="store_true", help="republish every partition")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "status",
        help="show the service, the snapshot and each source",
        description="Show the service's heartbeat, the snapshot version and "
        "each source's schedule and last run.",
    )
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "report",
        help="write the release benchmark report (HTML, optional CSV) and the weekly report",
        description="Compare two releases from the published snapshot and write a "
        "self-contained HTML report (default: the latest release vs the one before); with "
        "--weekly, also the weekly report (what changed, incidents, experiments, backlog) of "
        "the last whole week, Monday to Monday UTC. The service writes the weekly report "
        "into <data-dir>/reports/ every Monday by itself.",
    )
    p.add_argument("--baseline", help="baseline release (default: the one before --release)")
    p.add_argument("--release", help="candidate release (default: the latest)")
    p.add_argument("--out", default="benchmark.html", help="HTML file to write")
    p.add_argument("--csv", help="also write the table as CSV to this file")
    p.add_argument(
        "--threshold",
        type=float,
        default=5.0,
        help="practical threshold, relative change in %% (default 5)",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--raw",
        action="store_true",
        help="compare the releases as they ran, not at equal traffic load",
    )
    p.add_argument(
        "--with-outages",
        action="store_true",
        help="keep the hours of dependency outages (by default both releases are compared "
        "without them, so a release is not credited with an outage ending)",
    )
    p.add_argument("--weekly", help="also write the weekly report (HTML) to this file")
    p.add_argument(
        "--weekly-only", action="store_true", help="write only the weekly report (with --weekly)"
    )
    p.add_argument(
        "--week-ending",
        help="the weekly report's week ends on the Monday at or before this date "
        "(default: the last whole week of data)",
    )
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
