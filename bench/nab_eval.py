"""NAB evaluation of the online anomaly detector on both development folders.

Usage:
    .venv/bin/python bench/nab_eval.py                # defaults, both folders, per series
    .venv/bin/python bench/nab_eval.py --select       # the cross-folder choice of the default
    .venv/bin/python bench/nab_eval.py --root DIR ... # other labelled folders (same layout)
    .venv/bin/python bench/nab_eval.py --refractory 12  # no new alarm within 12 h of one

An alarm is the time an episode was confirmed (`Episode.confirmed_at`), i.e. when an alert
would have fired: the detector is online, each verdict uses only the data up to its point, so
the NAB score here measures real-time detection, as NAB intends. For comparison the tables
also show the naive trailing median/MAD baseline.

The default's rule (--select): over a small grid of the two settings that set how much a
deviation must exceed the typical day's largest (tail_factor, tail_quantile) and of the margin
by which a seasonal model must beat a simpler one (season_gain), choose the best NAB standard
score on one folder and report it on the other, both ways round; the default is the grid point
whose worse folder scores best (max-min), so it is not fitted to either. Both folders, each on
its own, choose the same point (1.5, 0.75, 0.3).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analysis.nab_score import (  # noqa: E402
    WindowCount,
    count_windows,
    nab_normalised_score,
    nab_raw_score,
    rolling_mad_alarms,
)
from analysis.online_anomalies import OnlineConfig, scan  # noqa: E402

SHARED = ROOT / "tests" / "data"  # copies of ../shared/nab and ../shared/nab-more
FOLDERS = {"nab": SHARED / "nab", "nab-more": SHARED / "nab-more"}
GRID = {
    "tail_factor": (1.25, 1.5, 2.0),
    "tail_quantile": (0.5, 0.75, 0.9),
    "season_gain": (0.1, 0.2, 0.3, 0.4),
}

Series = tuple[str, pd.DataFrame, list[tuple[str, str]]]


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

    def summary(self) -> str:
        t = self.total
        return (
            f"windows found {t.recall:.2f} ({t.found}/{t.windows}), alarm precision "
            f"{t.precision:.2f} ({t.true_alarms}/{t.alarms}), NAB standard score "
            f"{self.nab_score:.1f}"
        )


def load_nab(root: Path) -> list[Series]:
    """(file name, frame with timestamp and value, windows) for each labelled series."""
    windows = json.loads((root / "labels" / "combined_windows.json").read_text())
    out = []
    for name in sorted(windows):
        frame = pd.read_csv(root / "data" / name, parse_dates=["timestamp"])
        out.append((name, frame, [(str(a), str(b)) for a, b in windows[name]]))
    return out


def online_alarms(frame: pd.DataFrame, config: OnlineConfig | None = None) -> list[pd.Timestamp]:
    return scan(frame["timestamp"].to_numpy(), frame["value"].to_numpy(), config).alarms


def baseline_alarms(frame: pd.DataFrame) -> list[pd.Timestamp]:
    series = pd.Series(frame["value"].to_numpy(), index=pd.DatetimeIndex(frame["timestamp"]))
    return rolling_mad_alarms(series)


def evaluate(
    data: Sequence[Series], alarms_of: Callable[[pd.DataFrame], Sequence[pd.Timestamp]]
) -> Evaluation:
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
    lines.append(f"TOTAL: {ev.summary()}")
    return "\n".join(lines)


def select_default(data: dict[str, list[Series]], base: OnlineConfig) -> str:
    """The cross-folder choice described in the module docstring, as a printable report."""
    points = [dict(zip(GRID, combo, strict=True)) for combo in itertools.product(*GRID.values())]
    results: list[tuple[dict[str, float], dict[str, Evaluation]]] = []
    for point in points:
        cfg = replace(
            base,
            tail_factor=point["tail_factor"],
            tail_quantile=point["tail_quantile"],
            season_gain=point["season_gain"],
        )
        evs = {f: evaluate(d, partial(online_alarms, config=cfg)) for f, d in data.items()}
        results.append((point, evs))
    lines = ["grid point" + " " * 58 + "  ".join(f"{f:>36}" for f in data)]
    for point, evs in results:
        cells = [
            f"R {e.total.recall:.2f} P {e.total.precision:.2f} NAB {e.nab_score:5.1f}"
            for e in evs.values()
        ]
        lines.append(f"{point!s:68}" + "  ".join(f"{c:>36}" for c in cells))
    names = list(data)
    for chosen_on in names:
        point, evs = max(results, key=lambda r: r[1][chosen_on].nab_score)
        for other in names:
            if other != chosen_on:
                lines.append(
                    f"chosen on {chosen_on}: {point} -> {chosen_on} {evs[chosen_on].summary()}; "
                    f"{other} {evs[other].summary()}"
                )
    point, evs = max(results, key=lambda r: min(e.nab_score for e in r[1].values()))
    lines.append(f"max-min choice (the default): {point}")
    for folder, ev in evs.items():
        lines.append(f"  {folder}: {ev.summary()}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", action="store_true", help="cross-folder choice")
    parser.add_argument("--root", action="append", type=Path, help="a labelled folder")
    parser.add_argument("--no-compare", action="store_true", help="online detector only")
    parser.add_argument("--refractory", type=float, default=0.0, help="hours (default 0)")
    args = parser.parse_args(argv[1:])
    roots = {p.name: p for p in args.root} if args.root else FOLDERS
    data = {name: load_nab(path) for name, path in roots.items()}
    base = replace(OnlineConfig(), refractory=timedelta(hours=args.refractory))
    if args.select:
        print(select_default(data, base))
        return 0
    title = "Online detector (OnlineConfig defaults)"
    if args.refractory:
        title = f"Online detector (defaults, refractory {args.refractory:g} h)"
    for folder, series in data.items():
        print(f"== {folder} ({len(series)} series)")
        print(table(title, evaluate(series, partial(online_alarms, config=base))))
        if not args.no_compare:
            print(f"Trailing median/MAD baseline: {evaluate(series, baseline_alarms).summary()}")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
