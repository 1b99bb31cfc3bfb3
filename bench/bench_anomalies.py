"""Benchmark: the online anomaly detector on 50 metric series of 1-minute points.

Usage: .venv/bin/python bench/bench_anomalies.py [--series 50] [--days 30] [--repeat 3]
                                                  [--minutes 10] [--timezone UTC]

1. First scan: `scan` of each series over `days` days (43,200 points each at 30 days).
   Target: 3 s or less for the 50 series.
2. Online updates: from the scanned states, `update` every series by one new minute, for
   `minutes` consecutive minutes. A 5-minute bucket closes every fifth minute (then the
   baselines move); in the other minutes the open bucket's baseline is reused. Printed per
   minute for all series: the update alone (states kept in memory, as a long-running
   service would) and the update with the state loaded from JSON and saved back (a collector
   that keeps no memory between runs). Target: 50 ms or less for the 50 series.
   The cost does not depend on the history: the state is bounded (its JSON size is printed).

Timings are printed, never asserted: the machine is shared and varies by 5-20 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.online_anomalies import (  # noqa: E402
    OnlineConfig,
    scan,
    state_from_json,
    state_to_json,
    update,
)


def make_series(seed: int, days: int = 30) -> pd.Series:
    """Latency-like series: daily and weekly cycles, noise, a few spikes and one level shift."""
    rng = np.random.default_rng(seed)
    n = days * 1440
    t = np.arange(n)
    values = (
        200
        + 40 * np.sin(2 * np.pi * t / 1440)
        + 15 * np.where((t // 1440) % 7 >= 5, -1.0, 0.0)
        + rng.normal(0, 5, n)
    )
    values[rng.integers(0, n, 5)] += rng.uniform(40, 120, 5)
    values[rng.integers(n // 2, n) :] += 30
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=n, freq="1min"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--timezone", default="UTC")
    args = parser.parse_args()
    config = OnlineConfig(timezone=args.timezone)
    data = [make_series(seed, args.days) for seed in range(args.series)]
    arrays = [(s.index.to_numpy(), s.to_numpy()) for s in data]

    timings, episodes, states = [], 0, []
    for _ in range(args.repeat):
        start = time.perf_counter()
        scans = [scan(t, v, config) for t, v in arrays]
        timings.append(time.perf_counter() - start)
        episodes = sum(len(s.episodes) for s in scans)
        states = [s.state for s in scans]
    print(
        f"first scan, {args.series} series x {len(data[0]):,} points: best {min(timings):.2f} s, "
        f"median {statistics.median(timings):.2f} s over {args.repeat} runs (target <= 3 s); "
        f"{episodes} episodes"
    )

    texts = [state_to_json(s) for s in states]
    sizes = [len(t) for t in texts]
    print(f"state as JSON: {statistics.mean(sizes) / 1024:.0f} KiB per series (bounded)")
    last = data[0].index[-1]
    memory, disk = [], []
    for minute in range(1, args.minutes + 1):
        when = np.array([np.datetime64(last + pd.Timedelta(minutes=minute), "ns")])
        value = np.array([200.0])
        start = time.perf_counter()
        states = [update(s, when, value)[0] for s in states]
        memory.append(time.perf_counter() - start)
        start = time.perf_counter()
        for k, text in enumerate(texts):
            texts[k] = state_to_json(update(state_from_json(text), when, value)[0])
        disk.append(time.perf_counter() - start)
    ms = [round(x * 1000, 1) for x in memory]
    ms_json = [round(x * 1000, 1) for x in disk]
    print(
        f"one new minute for all {args.series} series, per minute (target <= 50 ms):\n"
        f"  update, states in memory: {ms} ms; median {statistics.median(ms):.1f}, "
        f"max {max(ms):.1f}\n"
        f"  with state from/to JSON:  {ms_json} ms; median {statistics.median(ms_json):.1f}, "
        f"max {max(ms_json):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
