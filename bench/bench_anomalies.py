"""Benchmark: anomaly scan of 50 metric series of 1-minute points over 30 days (43,200 each).

Usage: .venv/bin/python bench/bench_anomalies.py [--series 50] [--repeat 3]
Target: 3 s or less for the 50 series. Prints the best and median of the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from analysis.anomalies import detect_anomalies


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
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = [make_series(seed) for seed in range(args.series)]
    timings = []
    found = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        found = sum(len(detect_anomalies(s).anomalies) for s in data)
        timings.append(time.perf_counter() - start)
    print(
        f"{args.series} series x {len(data[0]):,} points: best {min(timings):.2f} s, "
        f"median {statistics.median(timings):.2f} s over {args.repeat} runs "
        f"(target <= 3 s); {found} anomalies"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
