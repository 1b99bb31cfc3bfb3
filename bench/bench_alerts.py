"""Evaluating 50 alert rules after a run on the 30-day demo (target: 200 ms or less).

Run: .venv/bin/python bench/bench_alerts.py [data_dir] [rounds]

Without data_dir, a 30-day demo is built in a temporary folder (about 20 s). The 50 rules are
the 13 defaults (the anomaly rule on hourly p95 turn latency, shipped disabled, enabled here)
and 37 threshold rules on catalogue metrics (latency percentiles, rates, counts, MOS; windows
of 5 minutes to 6 hours, some split by release). The history is replayed
once first (the first start, timed too); then each round moves the clock one minute, as the
service does between runs, and evaluates every due rule: reading the snapshot, the state
machine, and one control-store transaction with the outbox. Reported:
  - after a publish: a new snapshot version (the latest day of every table rewritten), which
    the evaluator's readers follow first (what the service pays after each run);
  - same snapshot: the evaluation alone;
  - all due: the hourly experiment rule and the 5-minute API rule due too (their worst minute).
Times are medians and maxima over the rounds; the machine's other load shows in the spread.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.alerts.model import Rule  # noqa: E402
from collectors.alerts.delivery import LogReceiver  # noqa: E402
from collectors.alerts.runner import Alerting  # noqa: E402
from collectors.alerts.settings import AlertSettings, default_settings  # noqa: E402
from collectors.snapshot import open_snapshot  # noqa: E402

THRESHOLDS = [("p95_e2e_latency", ">", 3500.0, w) for w in (300, 900, 1800, 3600)] + [
    ("p50_e2e_latency", ">", 2000.0, 900),
    ("p99_e2e_latency", ">", 6000.0, 900),
    ("p95_llm_ttft", ">", 2500.0, 900),
    ("p95_llm_ttft", ">", 2500.0, 3600),
    ("p95_request_latency", ">", 5000.0, 900),
    ("p95_request_latency", ">", 5000.0, 300),
    ("llm_ttft", ">", 1500.0, 900),
    ("error_rate", ">", 5.0, 300),
    ("error_rate", ">", 3.0, 900),
    ("error_rate", ">", 2.0, 3600),
    ("error_rate", ">", 1.0, 21600),
    ("resolved_rate", "<", 30.0, 3600),
    ("escalated_rate", ">", 60.0, 3600),
    ("abandoned_rate", ">", 50.0, 3600),
    ("mos", "<", 3.0, 900),
    ("mos", "<", 3.3, 3600),
    ("calls", "<", 1.0, 1800),
    ("calls", ">", 5000.0, 3600),
    ("errors", ">", 500.0, 900),
    ("errors", ">", 200.0, 300),
    ("handle_time", ">", 900.0, 3600),
    ("turns_per_call", ">", 30.0, 3600),
    ("interruptions_per_turn", ">", 1.0, 3600),
    ("thumbs_down_rate", ">", 60.0, 3600),
    ("csat_share", "<", 30.0, 3600),
    ("uptime", "<", 90.0, 900),
]
BY_RELEASE = [
    ("p95_e2e_latency", ">", 3500.0, 1800),
    ("error_rate", ">", 3.0, 1800),
    ("mos", "<", 3.0, 1800),
    ("resolved_rate", "<", 30.0, 3600),
    ("llm_ttft", ">", 1500.0, 1800),
    ("p95_llm_ttft", ">", 2500.0, 1800),
    ("abandoned_rate", ">", 50.0, 3600),
    ("turns_per_call", ">", 30.0, 3600),
]


def fifty_rules() -> tuple[Rule, ...]:
    # every default, the anomaly example (shipped disabled) enabled too
    rules = [dataclasses.replace(r, enabled=True) for r in default_settings().rules]
    thresholds = THRESHOLDS[: 50 - len(rules) - len(BY_RELEASE)]
    for i, (metric, op, threshold, window) in enumerate(thresholds):
        params = {"metric": metric, "op": op, "threshold": threshold, "window": float(window)}
        rules.append(Rule(f"bench_{i}", "threshold", params, for_s=300))
    for i, (metric, op, threshold, window) in enumerate(BY_RELEASE):
        params = {"metric": metric, "op": op, "threshold": threshold, "window": float(window)}
        rules.append(Rule(f"bench_release_{i}", "threshold", {**params, "by": "release"}))
    assert len(rules) == 50, len(rules)
    return tuple(rules)


def republish(serving: Path, k: int) -> None:
    """What a run's publish does to the snapshot: its latest day of every table and rollup is
    rewritten (copied to a new file here) and a new manifest version names the new files."""
    manifest = json.loads((serving / "manifest.json").read_text())
    for group in ("tables", "rollups"):
        for entry in manifest[group].values():
            if not entry["days"]:
                continue
            day = max(entry["days"])
            old = entry["days"][day]["file"]
            new = old.replace(".parquet", f"-b{k}.parquet")
            shutil.copyfile(serving / old, serving / new)
            entry["days"][day] = {**entry["days"][day], "file": new}
    manifest["version"] += 1
    tmp = serving / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, serving / "manifest.json")


def anchor_of(root: Path) -> datetime:
    con = open_snapshot(root / "serving").con
    mark = con.execute("SELECT value FROM watermarks WHERE stream = 'demo'").fetchone()[0]
    con.close()
    return datetime.fromisoformat(json.loads(mark)["anchor"]).astimezone(UTC).replace(tzinfo=None)


def main() -> None:
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    if len(sys.argv) > 1:
        root = Path(sys.argv[1])
    else:
        from tests.demo_data import build_demo_data

        root = build_demo_data(Path(tempfile.mkdtemp()) / "demo", history_days=30)
    now = [anchor_of(root) + timedelta(minutes=1)]
    settings = AlertSettings(rules=fifty_rules(), inhibit=default_settings().inhibit)
    (root / "control.sqlite").unlink(missing_ok=True)
    alerting = Alerting(root, settings, [LogReceiver()], clock=lambda: now[0])
    started = time.perf_counter()
    alerting.evaluate_once()
    print(
        f"first start: replay of 30 days through 50 rules + first evaluation: "
        f"{time.perf_counter() - started:.1f} s"
    )
    engine = alerting.engine
    fresh, cached, worst = [], [], []
    for i in range(rounds):
        now[0] += timedelta(minutes=1)
        republish(root / "serving", i)  # a run was published: the evaluator follows it
        started = time.perf_counter()
        engine.evaluate()
        fresh.append(time.perf_counter() - started)
        now[0] += timedelta(minutes=1)
        started = time.perf_counter()
        engine.evaluate()
        cached.append(time.perf_counter() - started)
        if i < 3:
            engine._last_evaluated.clear()  # every rule due, the hourly ones included
            now[0] += timedelta(minutes=1)
            started = time.perf_counter()
            engine.evaluate()
            worst.append(time.perf_counter() - started)
    for label, times in (
        ("after a publish (a new snapshot version)", fresh),
        ("same snapshot", cached),
        ("all 50 due (hourly and 5-minute rules too)", worst),
    ):
        print(
            f"{label}: median {statistics.median(times) * 1000:.0f} ms, "
            f"max {max(times) * 1000:.0f} ms over {len(times)} rounds"
        )


if __name__ == "__main__":
    main()
