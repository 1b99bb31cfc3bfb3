"""NAB evaluation of the anomaly detector against the rolling median/MAD baseline.

Usage: .venv/bin/python bench/nab_eval.py [path/to/shared/nab]

The detector runs with its default DetectorConfig on all twelve series: one parameter set, no
per-series tuning. It is a batch scan (it sees the whole file), whereas NAB was designed for
streaming detectors, so the NAB score here measures retrospective detection.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from analysis.anomalies import DetectorConfig, detect_anomalies
from analysis.nab_score import (
    WindowCount,
    count_windows,
    nab_normalised_score,
    nab_raw_score,
    rolling_mad_alarms,
)

DEFAULT_NAB = Path(__file__).resolve().parents[1].parent / "shared" / "nab"


@dataclass(frozen=True)
class FileResult:
    name: str
    count: WindowCount
    raw: float
    scored_windows: int


@dataclass(frozen=True)
class Evaluation:
    files: list[FileResult]

    @property
    def total(self) -> WindowCount:
        out = WindowCount(0, 0, 0, 0)
        for f in self.files:
            out = out + f.count
        return out

    @property
    def nab_score(self) -> float:
        return nab_normalised_score(
            sum(f.raw for f in self.files), sum(f.scored_windows for f in self.files)
        )


def load_nab(root: Path) -> list[tuple[str, pd.DataFrame, list[tuple[str, str]]]]:
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out = []
    for name in sorted(windows):
        frame = pd.read_csv(root / "data" / name, parse_dates=["timestamp"])
        out.append((name, frame, [tuple(w) for w in windows[name]]))
    return out


def detector_alarms(frame: pd.DataFrame, config: DetectorConfig | None = None) -> list:
    scan = detect_anomalies(frame["timestamp"].to_numpy(), frame["value"].to_numpy(), config)
    return [a.start for a in scan.anomalies]


def baseline_alarms(frame: pd.DataFrame) -> list:
    series = pd.Series(frame["value"].to_numpy(), index=pd.DatetimeIndex(frame["timestamp"]))
    return rolling_mad_alarms(series)


def evaluate(data, alarms_of) -> Evaluation:
    files = []
    for name, frame, windows in data:
        alarms = alarms_of(frame)
        count = count_windows(frame["timestamp"], alarms, windows)
        raw, scored = nab_raw_score(frame["timestamp"], alarms, windows)
        files.append(FileResult(name, count, raw, scored))
    return Evaluation(files)


def table(title: str, ev: Evaluation) -> str:
    lines = [title, f"{'series':58} {'win':>4} {'found':>5} {'alarms':>6} {'real':>5} {'raw':>7}"]
    for f in ev.files:
        c = f.count
        lines.append(
            f"{f.name:58} {c.windows:4d} {c.found:5d} {c.alarms:6d} {c.true_alarms:5d} {f.raw:7.2f}"
        )
    t = ev.total
    lines.append(
        f"{'TOTAL':58} {t.windows:4d} {t.found:5d} {t.alarms:6d} {t.true_alarms:5d}"
        f"   windows found {t.recall:.0%}, precision {t.precision:.0%}, "
        f"NAB standard score {ev.nab_score:.1f}"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else DEFAULT_NAB
    data = load_nab(root)
    print(
        table(
            "Detector (DetectorConfig defaults, same for all series)",
            evaluate(data, detector_alarms),
        )
    )
    print()
    print(
        table(
            "Baseline (trailing 288-point median/MAD, |z| > 3.5)", evaluate(data, baseline_alarms)
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
