"""Weekly reports, written by the service once a week into data/reports/ and listed by the app.

A report covers Monday 00:00 to Monday 00:00 UTC (analysis.weekly_report). The service checks
on its poll whether the last whole week of data has a report; if not, it writes one on a
background thread (about 5-10 s on the 30-day demo), so polling and collecting never wait. It
reads the published snapshot, like the app, and never the warehouse. A file is written aside
and renamed, so the app never lists half a report.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("workbench.reports")

FOLDER = "reports"
_NAME = re.compile(r"weekly-(\d{4}-\d{2}-\d{2})\.html")


@dataclass(frozen=True)
class ReportFile:
    path: Path
    week_end: dt.date  # the Monday the week ends on (exclusive)

    @property
    def week_start(self) -> dt.date:
        return self.week_end - dt.timedelta(days=7)

    @property
    def title(self) -> str:
        last = self.week_end - dt.timedelta(days=1)
        return f"Week of {self.week_start:%d %b} to {last:%d %b %Y}"


def reports_dir(root: Path) -> Path:
    return Path(root) / FOLDER


def report_path(root: Path, week_end: dt.datetime | dt.date) -> Path:
    return reports_dir(root) / f"weekly-{week_end:%Y-%m-%d}.html"


def list_reports(root: Path) -> list[ReportFile]:
    """The weekly reports written so far, newest week first."""
    folder = reports_dir(root)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        m = _NAME.fullmatch(path.name)
        if m and path.is_file():
            found.append(ReportFile(path, dt.date.fromisoformat(m.group(1))))
    return sorted(found, key=lambda r: r.week_end, reverse=True)


def weekly_report_page(
    root: Path,
    week_end: dt.datetime | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
) -> tuple[dt.datetime, str] | None:
    """(the week's end, the report's HTML) for the week ending `week_end` (default: the last
    whole week of data), from the published snapshot; None when there is no data yet."""
    from analysis import changes, overview
    from analysis import experiments as ex
    from analysis.metrics import metric_registry
    from analysis.weekly_report import WEEK, week_ending, weekly_html, weekly_report
    from collectors.alerts.store import AlertStore
    from collectors.control import ControlStore
    from collectors.snapshot import open_snapshot

    root = Path(root)
    con = open_snapshot(root / "serving").con
    try:
        data_end = overview.data_end(con)
        if data_end is None:
            return None
        end = week_ending(week_end or data_end)
        control = root / "control.sqlite"
        saved = list(ControlStore(control).experiments().values()) if control.exists() else []
        plans = changes.saved_experiment_plans(
            saved, ex.discovered_experiments(con), metric_registry(metrics)
        )
        episodes = AlertStore(control).episodes(end - WEEK, end) if control.exists() else None
        return end, weekly_html(weekly_report(con, end, episodes, plans))
    finally:
        con.close()


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(path.name + ".tmp")
    aside.write_text(text, encoding="utf-8")
    aside.replace(path)


def write_weekly_report(
    root: Path,
    week_end: dt.datetime | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
) -> Path | None:
    """Write the week's report into data/reports/ (see weekly_report_page)."""
    made = weekly_report_page(root, week_end, metrics)
    if made is None:
        return None
    end, page = made
    path = report_path(root, end)
    write_atomically(path, page)
    return path


class WeeklyReports:
    """A poll task: writes the last whole week's report when it is missing, on its own thread.
    `now` is injectable for tests."""

    def __init__(
        self,
        root: Path,
        metrics: Sequence[Mapping[str, Any]] = (),
        now: Any = None,
    ) -> None:
        self.root = Path(root)
        self.metrics = list(metrics)
        self.now = now or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
        self._thread: threading.Thread | None = None
        self._failed_for: dt.datetime | None = None

    def due(self) -> dt.datetime | None:
        """The week end whose report is missing, if any (a week is whole once it has ended)."""
        from analysis.weekly_report import week_ending

        end = week_ending(self.now())
        if report_path(self.root, end).exists() or self._failed_for == end:
            return None
        if not (self.root / "serving" / "manifest.json").exists():
            return None
        return end

    def tick(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        end = self.due()
        if end is None:
            return
        self._thread = threading.Thread(
            target=self._write, args=(end,), name="weekly-report", daemon=True
        )
        self._thread.start()

    def _write(self, end: dt.datetime) -> None:
        try:
            path = write_weekly_report(self.root, end, self.metrics)
        except Exception:  # noqa: BLE001 - a report must never stop the service
            log.exception("writing the weekly report for the week ending %s failed", end.date())
            self._failed_for = end  # once per week, not on every poll
            return
        if path is not None:
            log.info("wrote the weekly report %s", path)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
