"""Benchmark: every page's first render at three warehouse sizes, with peak memory.

    .venv/bin/python bench/gen_large_warehouse.py --size 1.5M      # once per size
    .venv/bin/python bench/bench_pages_scale.py --sizes 1.5M 15M \
        [--root /work/bigdata] [--repeat 3] [--live-minute 15M] [--save FILE]

Each page of app/main.py (app/views/*.py) is rendered through Streamlit's AppTest, as
tests/app/ does, on the snapshot that bench/gen_large_warehouse.py published for each size:
for the 7-day and the 30-day period (the period picker's session state set before the first
run), `--repeat` times each, with the pages' st.cache_data cleared before every run so each
run computes what a first visit computes. Before timing, each process renders the page once
untimed (importing its modules, as a running app has) and opens the snapshot once (the app opens it once per published version for every session), and that
opening is reported apart. Each page at each size runs in a fresh subprocess, whose peak
resident memory (ru_maxrss) is reported.

`--live-minute SIZE` then, at that size, times (a) evaluating the experiment with the most
exposures through the app's data layer (analysis.experiments.evaluate_experiment on
app.data.cursor(), the page's default definition and metrics plus handle time: 5 metrics,
sequential), (b) appending one minute of rows to the warehouse and publishing it with the real
publisher, and (c) evaluating the experiment again on the new snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb

REPO = Path(__file__).resolve().parent.parent
VIEWS = REPO / "app" / "views"
# The pages in app/main.py's navigation order, with the titles it gives them.
PAGES = (
    ("overview.py", "Overview"),
    ("alerts.py", "Alerts"),
    ("health.py", "Health & uptime"),
    ("performance.py", "Performance"),
    ("errors.py", "Errors"),
    ("infrastructure.py", "Infrastructure"),
    ("voice_quality.py", "Voice quality"),
    ("conversations.py", "Conversations"),
    ("feedback.py", "Feedback"),
    ("feature_usage.py", "Feature usage"),
    ("security.py", "Security"),
    ("anomalies.py", "Anomalies"),
    ("experiments.py", "Experiments"),
    ("benchmarks.py", "Benchmarks"),
    ("collector_status.py", "Collectors"),
)
PERIODS = {7: "Last 7 days", 30: "Last 30 days"}
# The generator's last full day (its data ends at midnight on 2026-12-01).
FULL_DAY = "2026-11-30"
# The tables a live minute adds rows to (gen_large_warehouse.append_live_minute).
LIVE_TABLES = (
    "calls",
    "voice_turns",
    "voice_quality",
    "feedback",
    "feature_usage",
    "experiment_exposures",
    "requests",
    "errors",
)
# As app/views/experiments.py's defaults for an experiment found in the exposures, plus one.
EXPERIMENT_METRICS = (
    "resolved_rate",
    "p95_e2e_latency",
    "llm_ttft",
    "abandoned_rate",
    "handle_time",
)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def has_period_picker(page: str) -> bool:
    return "period_picker(" in (VIEWS / page).read_text()


# ------------------------------------------------------------------ in the subprocess


def _cursor() -> duckdb.DuckDBPyConnection:
    from app import data

    return data.cursor()


def child_page(page: str, repeat: int, timeout: float) -> dict[str, Any]:
    """Render one page `repeat` times per period in this process; times in seconds."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from app import data

    t = time.perf_counter()
    data.snapshot()  # opened once per version for every session (st.cache_resource)
    opened = time.perf_counter() - t
    out: dict[str, Any] = {"snapshot_open_s": opened, "times": {}, "problems": []}
    periods = list(PERIODS) if has_period_picker(page) else [7]
    # One untimed render first (the shortest period when there is a picker), so the figures
    # leave out importing the page's modules, which a running app has done already.
    warm = AppTest.from_file(str(VIEWS / page), default_timeout=timeout)
    warm.session_state["period"] = "Last 24 hours"
    warm.run()
    for days in periods:
        runs = []
        for _ in range(repeat):
            st.cache_data.clear()
            at = AppTest.from_file(str(VIEWS / page), default_timeout=timeout)
            at.session_state["period"] = PERIODS[days]
            t = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - t)
            problems = [e.message for e in at.exception]
            problems += [e.value for e in at.error if "failed to load" in str(e.value)]
            if days in periods and len(periods) > 1:
                shown = [b.value for b in at.selectbox if b.key == "period"]
                if shown != [PERIODS[days]]:  # the figure would be for another period
                    problems.append(f"period picker shows {shown}, not {PERIODS[days]}")
            if problems:
                out["problems"].append(f"{days} d: {problems[0][:300]}")
        out["times"][str(days)] = runs
    out["peak_mb"] = _peak_mb()
    return out


def _experiment_definition() -> tuple[Any, list[Any]]:
    from analysis import experiments as ex
    from analysis.metrics import metric_registry
    from app import data
    from collectors.control import SavedExperiment

    found = ex.discovered_experiments(_cursor())
    if not found:
        raise SystemExit("no experiment in the exposures")
    top = max(found, key=lambda f: sum(f["units"].values()))
    n = len(top["variants"])
    saved = SavedExperiment(  # as the page's imported(): sequential, from the first exposure
        key=top["key"],
        name=top["key"],
        variants=top["variants"],
        weights=tuple([1 / n] * n),
        unit_type="call",
        primary_metrics=EXPERIMENT_METRICS[:1],
        guardrail_metrics=EXPERIMENT_METRICS[1:],
        start_at=top["first"].replace(hour=0, minute=0, second=0, microsecond=0).isoformat(),
        method="sequential",
        status="running",
    )
    registry = metric_registry(data.custom_metrics())
    return ex.experiment_definition(saved), [registry[m] for m in EXPERIMENT_METRICS]


def child_experiment(repeat: int) -> dict[str, Any]:
    from analysis import experiments as ex

    definition, metrics = _experiment_definition()
    con = _cursor()
    exposures = con.execute(
        "SELECT count(*) FROM experiment_exposures WHERE experiment_key = ?", [definition.key]
    ).fetchone()
    runs, computable = [], True
    for _ in range(repeat):
        t = time.perf_counter()
        result = ex.evaluate_experiment(_cursor(), definition, metrics, "sequential")
        runs.append(time.perf_counter() - t)
        computable = computable and result.computable
    return {
        "key": definition.key,
        "exposures": int(exposures[0]) if exposures else 0,
        "metrics": len(metrics),
        "times": runs,
        "computable": computable,
        "peak_mb": _peak_mb(),
    }


def child_live_minute(size: str, root: Path) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "bench"))
    from gen_large_warehouse import append_live_minute, plan_for

    from collectors.publish import publish
    from collectors.warehouse import open_warehouse

    con = open_warehouse(root / "warehouse.duckdb")
    con.execute("SET memory_limit = '6GB'")
    t = time.perf_counter()
    added = append_live_minute(con, plan_for(size))
    appended = time.perf_counter() - t
    t = time.perf_counter()
    published = publish(con, root / "serving")
    seconds = time.perf_counter() - t
    # A minute that lands in a day already full of data (any minute but the first of a day)
    # makes the publisher rewrite that whole day: mark the last full day dirty in the same
    # tables, as a late row in it would, and time that publish too.
    con.executemany(
        "INSERT INTO dirty_partitions VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(table, FULL_DAY) for table in LIVE_TABLES],
    )
    t = time.perf_counter()
    full_day = publish(con, root / "serving")
    full_day_s = time.perf_counter() - t
    con.close()
    return {
        "rows": added,
        "append_s": appended,
        "publish_s": seconds,
        "days_written": published.days_written,
        "files_written": published.files_written,
        "full_day_publish_s": full_day_s,
        "full_day_days_written": full_day.days_written,
        "peak_mb": _peak_mb(),
    }


# ------------------------------------------------------------------ the parent


def _run_child(args: list[str], data_dir: Path, timeout: float) -> dict[str, Any]:
    env = dict(os.environ, WORKBENCH_DATA_DIR=str(data_dir), PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"failed": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def _fmt(runs: list[float] | None) -> str:
    if not runs:
        return "-"
    return f"{min(runs):.2f} ({statistics.median(runs):.2f})"


def _best(runs: list[float] | None) -> str:
    return f"{min(runs):.2f}" if runs else "-"


def commit_measured() -> str:
    """The commit the figures belong to, marked when app/ or analysis/ had local changes."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
    ).stdout.strip()
    changed = subprocess.run(
        ["git", "status", "--porcelain", "--", "app", "analysis", "collectors"],
        capture_output=True,
        text=True,
        cwd=REPO,
    ).stdout.strip()
    return head + (
        " (with uncommitted changes in app/, analysis/ or collectors/)" if changed else ""
    )


def page_table(
    results: dict[str, dict[str, dict[str, Any]]], sizes: list[str], pages: list[str]
) -> str:
    head = "| page | " + " | ".join(f"{s}: 7 d / 30 d | {s}: peak MB" for s in sizes) + " |"
    lines = [head, "|---" * (1 + 2 * len(sizes)) + "|"]
    for page, title in PAGES:
        if page not in pages:
            continue
        cells = [title]
        for size in sizes:
            r = results.get(size, {}).get(page, {})
            if "failed" in r:
                cells += [f"failed: {r['failed'][:60]}", ""]
                continue
            times = r.get("times", {})
            both = _best(times.get("7"))
            if times.get("30"):
                both += f" / {_best(times.get('30'))}"
            cells += [both + (" !" if r.get("problems") else ""), f"{r.get('peak_mb', 0):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["1.5M", "15M"])
    parser.add_argument("--root", type=Path, default=Path("/work/bigdata"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pages", nargs="*", help="page files (default: every page)")
    parser.add_argument("--live-minute", help="size at which to time the live minute")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    parser.add_argument("--save", type=Path, help="also write the report to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--page", help=argparse.SUPPRESS)
    parser.add_argument("--experiment", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--append-minute", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        if args.page:
            out = child_page(args.page, args.repeat, args.timeout)
        elif args.experiment:
            out = child_experiment(args.repeat)
        else:
            out = child_live_minute(args.append_minute, Path(os.environ["WORKBENCH_DATA_DIR"]))
        print(json.dumps(out))
        return

    pages = args.pages or [p for p, _ in PAGES]
    report: list[str] = []
    results: dict[str, dict[str, dict[str, Any]]] = {}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for size in args.sizes:
        data_dir = args.root / size
        gen = json.loads((data_dir / "generation.json").read_text())
        report.append(
            f"{size}: {gen['rows']['calls']:,} calls, {gen['rows']['voice_turns']:,} turns, "
            f"{gen['rows']['requests']:,} requests, "
            f"{gen['rows']['experiment_exposures']:,} exposures; generated in "
            f"{gen['seconds']['total']:.0f} s, first publish {gen['seconds']['publish']:.0f} s; "
            f"warehouse {gen['bytes']['warehouse'] / 2**30:.1f} GiB, "
            f"snapshot {gen['bytes']['serving'] / 2**30:.1f} GiB"
        )
        print(report[-1], flush=True)
        results[size] = {}
        for page in pages:
            r = _run_child(
                ["--page", page, "--repeat", str(args.repeat), "--timeout", str(args.timeout)],
                data_dir,
                args.timeout * 2 * args.repeat,
            )
            results[size][page] = r
            print(f"  {size} {page}: {json.dumps(r)}", flush=True)
    table = page_table(results, args.sizes, pages)
    opened = {
        s: max((r.get("snapshot_open_s", 0) for r in results[s].values()), default=0)
        for s in args.sizes
    }
    lines = [
        f"Pages at scale ({started}, commit {commit_measured()}): first render through AppTest, "
        f"best of {args.repeat}, in seconds, for 7 / 30 days (pages without a period: one "
        "figure); peak MB is the ru_maxrss of a fresh process rendering that page for both "
        "periods",
        *report,
        "",
        table,
        "",
        "Opening the snapshot (once per version, not in the figures above): "
        + ", ".join(f"{s} {v:.2f} s" for s, v in opened.items()),
    ]
    problems = [
        f"  {s} {p}: {'; '.join(r['problems'])}"
        for s in args.sizes
        for p, r in results[s].items()
        if r.get("problems")
    ]
    if problems:
        lines += ["Pages that showed an exception or a failed section (marked !):", *problems]
    if args.live_minute:
        data_dir = args.root / args.live_minute
        before = _run_child(["--experiment", "--repeat", str(args.repeat)], data_dir, 7200)
        live = _run_child(["--append-minute", args.live_minute], data_dir, 7200)
        after = _run_child(["--experiment", "--repeat", str(args.repeat)], data_dir, 7200)
        lines += ["", f"At {args.live_minute}:"]
        if "failed" in before:
            lines.append(f"  experiment evaluation failed: {before['failed']}")
        else:
            lines.append(
                f"  evaluating experiment {before['key']} ({before['exposures']:,} exposures, "
                f"{before['metrics']} metrics, sequential): {_fmt(before['times'])} s, "
                f"peak {before['peak_mb']:.0f} MB"
                + ("" if before["computable"] else " (NOT computable)")
            )
        if "failed" in live:
            lines.append(f"  live minute failed: {live['failed']}")
        else:
            lines.append(
                f"  one live minute ({sum(live['rows'].values()):,} rows: "
                f"{json.dumps(live['rows'])}): appended in {live['append_s']:.2f} s, "
                f"published in {live['publish_s']:.2f} s ({live['days_written']} table-days, "
                f"{live['files_written']} files); the same minute into a full day (the last "
                f"day marked dirty in those tables): published in "
                f"{live['full_day_publish_s']:.2f} s ({live['full_day_days_written']} table-days)"
            )
        if "failed" not in after:
            lines.append(
                f"  evaluating it again after that minute: {_fmt(after['times'])} s, "
                f"peak {after['peak_mb']:.0f} MB"
            )
    text = "\n".join(lines)
    print(text)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(text + "\n")
        args.save.with_suffix(".json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
