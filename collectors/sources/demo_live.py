"""The demo after its backfill: the simulator's traffic, played live by a simulated voice agent
through the real monitoring SDK into a spool folder, which the `spool` job collects.

The demo source (`LiveDemoSource`, job "demo") writes the 30-day history straight into the
warehouse, as `DemoSource` does. From then on the agent's tables (calls, turns, requests,
errors, feedback... everything the SDK records) come from agent processes: each plays the
simulator's rows in real time through `configure_monitoring`, its middleware, the LiveKit
hook and the monitors, exactly as a production agent would, and ships them through the SDK's
spool sink. The tables other collectors fill in production (probes, host resources, database
statements, deployments, start-ups) the source still writes directly, minute by minute.

Why separate processes: an agent is one (the SDK keeps process-wide state, starts threads and
an atexit flush, and runs an event loop); the collectors service never imports the SDK's state
into its own process. One agent per release, as deploys do: a new release's process takes the
calls that start after its deploy while the old one finishes its calls, then exits.

The hand-over is exact. A row belongs to the window that holds its emission time (the
simulator's rule, see demo.py): the backfill wrote everything emitted before `until`; an agent
started at `until` plays everything emitted from then on, starting calls already under way
late. Each agent reports the time before which all its actions are flushed to the spool; the
source moves `until` to the earliest of these. When the service restarts (or an agent stops
early: killed, or for want of the demo job's heartbeat when the job is paused), the rows since
the agents last reported are written directly (the turns and feature uses they had already
recorded left out) and new agents take over from now.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from collectors import demo_truth as truth_mod
from collectors.sources.base import Batch
from collectors.sources.demo import STREAM, DemoSimulator, DemoSource, _floor_minute

log = logging.getLogger(__name__)

# What the SDK records in production; the other tables come from probes, pg_stats, Railway.
AGENT_TABLES = (
    "calls",
    "voice_turns",
    "voice_quality",
    "feedback",
    "feature_usage",
    "experiment_exposures",
    "requests",
    "errors",
    "auth_events",
    "security_events",
)
CHUNK_S = 300.0  # the agent loads the simulator's rows five minutes at a time
LOOKAHEAD_S = 1200.0  # ... twenty minutes ahead, so a call starts on time (calls last < 15)
LAG_S = 3600.0  # rows of a call come up to an hour after it starts (demo.LOOKBACK_HOURS)
PROGRESS_EVERY_S = 2.0
# Agents stop when the demo job has not run for this long (paused on the Collectors page, or
# its service gone): the next run writes the gap directly and starts new ones.
HEARTBEAT_S = 600.0


# ---------------------------------------------------------------- simulator rows -> workload


def _epoch_s(t: datetime) -> float:  # the simulator sets every time these rows carry
    return t.timestamp()


def _num(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _measured(v: Any) -> float:
    """A value the simulator always sets (a turn's LLM and TTS times, a call's quality)."""
    value = _num(v)
    if value is None:
        raise ValueError("the demo simulator left a required measurement empty")
    return value


def _concrete(route: str, call_id: str | None) -> str:
    """A path the route template matches (the stored route is the template)."""
    return route.replace("{call_id}", call_id or "call_0").replace("{caller_id}", "caller_0")


@dataclass(frozen=True)
class Share:
    """Which of a window's agent rows one agent plays: those of its `release` (rows without a
    release column by their call's release, or by time within [start, end))."""

    release: str
    start: float
    end: float
    skip_features_before: float = -math.inf  # uses an earlier agent already recorded

    def by_time(self, t: float) -> bool:
        return self.start <= t < self.end


def workload_from_window(tables: Mapping[str, pa.Table], share: Share) -> Any:
    """The simulated agent's workload for the agent rows of one window of the simulator."""
    from collectors.simulated_agent import (
        TRACK,
        Call,
        Failure,
        FeatureUse,
        Feedback,
        Login,
        Quality,
        Request,
        SecurityEvent,
        Turn,
        Workload,
    )

    rows = {name: tables[name].to_pylist() for name in AGENT_TABLES}
    mine = {c["call_id"] for c in rows["calls"] if c["release"] == share.release}
    turns: dict[str, list[dict[str, Any]]] = {}
    for t in rows["voice_turns"]:
        if t["call_id"] in mine:
            turns.setdefault(t["call_id"], []).append(t)
    quality = {q["call_id"]: q for q in rows["voice_quality"] if q["call_id"] in mine}
    uses: dict[str, list[Any]] = {}
    for u in rows["feature_usage"]:
        at = _epoch_s(u["used_at"])
        if u["call_id"] in mine and at >= share.skip_features_before:
            uses.setdefault(u["call_id"], []).append(
                FeatureUse(at, u["feature_name"], _num(u["duration_s"]))
            )
    calls = []
    for c in rows["calls"]:
        if c["call_id"] not in mine:
            continue
        q = quality.get(c["call_id"])
        calls.append(
            Call(
                c["call_id"],
                _epoch_s(c["started_at"]),
                _epoch_s(c["ended_at"]),
                c["outcome"],
                tuple(
                    Turn(
                        _epoch_s(t["started_at"]),
                        llm_ttft_ms=_measured(t["llm_ttft_ms"]),
                        tts_ttfb_ms=_measured(t["tts_ttfb_ms"]),
                        eou_delay_ms=_num(t["eou_delay_ms"]),
                        stt_ms=_num(t["stt_ms"]),
                        e2e_ms=_num(t["e2e_ms"]),
                        interrupted=bool(t["interrupted"]),
                        prompt_tokens=t["llm_prompt_tokens"] or 0,
                        completion_tokens=t["llm_completion_tokens"] or 0,
                        tts_characters=t["tts_characters"] or 0,
                    )
                    for t in sorted(turns.get(c["call_id"], []), key=lambda t: t["turn_index"])
                ),
                caller_id=c["caller_id"],
                experiment_key=c["experiment_key"],
                region=c["region"],
                network=c["network"],
                quality=None
                if q is None
                else Quality(
                    _measured(q["latency_ms"]),
                    _measured(q["jitter_ms"]),
                    _measured(q["packet_loss_pct"]),
                    _measured(q["mos_reported"]),
                    _num(q["audio_level"]),
                    _num(q["noise_level"]),
                    q["codec"],
                ),
                features=tuple(uses.get(c["call_id"], ())),
            )
        )
    requests = []
    for r in rows["requests"]:
        if r["release"] != share.release:
            continue
        at, duration = _epoch_s(r["started_at"]), _num(r["duration_ms"]) or 0.0
        api_user = r["user_id"]
        requests.append(
            Request(
                at + duration / 1000.0 if api_user else at,  # the API layer reports on reply
                r["method"],
                r["route"],
                _concrete(r["route"], r["call_id"]),
                r["status_code"],
                duration_ms=duration,
                ip=r["ip"],
                user_id=api_user,
                call_id=r["call_id"],
            )
        )
    failures = tuple(
        Failure(
            e["error_type"],
            e["message"] or "",
            TRACK,
            e["severity"] or "error",
            stack_trace=e["stack_trace"],
            at_s=_epoch_s(e["occurred_at"]),
            route=e["route"],
            method=e["method"],
            call_id=e["call_id"],
        )
        for e in rows["errors"]
        if e["release"] == share.release
    )
    feedback = tuple(
        Feedback(
            _epoch_s(f["submitted_at"]),
            f["rating"],
            f["category"],
            f["comment"],
            call_id=f["call_id"],
            user_id=f["user_id"],
        )
        for f in rows["feedback"]
        if f["release"] == share.release
    )
    logins = tuple(
        Login(
            _epoch_s(a["occurred_at"]),
            a["ip"],
            bool(a["success"]),
            via_http=False,
            user_id=a["user_id"],
            user_agent=a["user_agent"],
            event_type=a["event_type"],
            path=a["path"],
        )
        for a in rows["auth_events"]
        if share.by_time(_epoch_s(a["occurred_at"]))
    )
    security = tuple(
        SecurityEvent(
            _epoch_s(s["occurred_at"]),
            s["event_type"],
            s["severity"] or "info",
            ip=s["ip"],
            path=s["path"],
            user_id=s["user_id"],
            details=json.loads(s["details"]) if s["details"] else None,
        )
        for s in rows["security_events"]
        if share.by_time(_epoch_s(s["occurred_at"]))
    )
    return Workload(
        calls=tuple(calls),
        requests=tuple(requests),
        logins=logins,
        security_events=security,
        failures=failures,
        feedback=feedback,
    )


def releases_between(sim: DemoSimulator, start: float, end: float) -> list[Share]:
    """The release epochs (successful deploys) whose rows may be emitted in [start, end)."""
    deps = sorted(
        (d.finished_at.timestamp(), d.release)
        for d in sim.truth.deployments
        if d.status == "SUCCESS"
    )
    shares = []
    for i, (t0, release) in enumerate(deps):
        t1 = deps[i + 1][0] if i + 1 < len(deps) else math.inf
        if t0 < end and t1 + LAG_S > start:
            shares.append(Share(release, t0, t1))
    return shares


def experiment_definitions() -> dict[str, dict[str, Any]]:
    return {truth_mod.EXPERIMENT_KEY: {"variants": list(truth_mod.VARIANTS), "weights": [0.5, 0.5]}}


# ------------------------------------------------------------------------ the agent process


class AgentRowsOnly:
    """The SDK's spool sink, minus the host samples and start-ups of the machine the demo
    runs on: the demo simulates its agent hosts, which a stray real host would contradict."""

    DROP = ("resource_samples", "probe_results", "app_starts")

    def __init__(self, directory: Path) -> None:
        from collectors.instrumentation.sinks import SpoolSink

        self.spool = SpoolSink(directory, rotate_seconds=60.0)

    def write(self, table: str, rows: list[dict[str, Any]]) -> None:
        if table not in self.DROP:
            self.spool.write(table, rows)

    def tick(self) -> None:
        self.spool.tick()

    def flush(self) -> None:
        self.spool.flush()

    def close(self) -> None:
        self.spool.close()

    @property
    def dropped(self) -> int:
        return self.spool.dropped


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def agent_config(release: str) -> dict[str, Any]:
    """The monitoring config of the demo's agent for `release`."""
    return {
        "release": release,
        "service": truth_mod.SERVICE,
        "experiments": {"definitions": experiment_definitions(), "source": "local"},
    }


async def run_agent(
    spool: Path,
    progress: Path,
    sim: DemoSimulator,
    share: Share,
    start: float,
    *,
    speed: float = 1.0,
    parent_pid: int | None = None,
    heartbeat: Path | None = None,
) -> None:
    """Play `share`'s rows emitted from `start` on, live, until the share ends (its release
    was replaced and its last rows are played), the parent dies, the demo job stops beating
    (`heartbeat` untouched for HEARTBEAT_S) or a signal comes. Every
    PROGRESS_EVERY_S it flushes the SDK and reports `played_until`: every action before it
    has run and no later one has (requests still being served finish at a graceful stop)."""
    from collectors.simulated_agent import SimulatedAgent

    agent = SimulatedAgent(
        agent_config(share.release),
        sink=AgentRowsOnly(spool),
        real_time=True,
        speed=speed,
        # At normal speed the clock is the wall clock: what is due since `start` (the time the
        # backfill took, say) plays at once. Faster (tests), simulated time begins at `start`.
        origin=None if speed == 1.0 else start,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await agent.start()
    loaded = played = start
    last_row = share.end + LAG_S
    done = False
    try:
        while not (stopping.is_set() or done):
            now = agent.now()
            while loaded < min(now + LOOKAHEAD_S, last_row):
                end = loaded + CHUNK_S
                agent.schedule(workload_from_window(sim.window(_us_s(loaded), _us_s(end)), share))
                loaded = end
            tick = min(now + PROGRESS_EVERY_S * speed, loaded)
            await agent.run_until(tick)  # each action when it is due
            played = tick
            wait = (tick - agent.now()) / speed
            if wait > 0:
                try:
                    await asyncio.wait_for(stopping.wait(), wait)
                except TimeoutError:
                    pass
            agent.flush()
            done = loaded >= last_row and agent.next_at() is None and not agent.in_flight_since()
            _write_json(progress, _progress(share, start, played, done))
            if parent_pid is not None and os.getppid() != parent_pid:
                break  # the service is gone: so is its demo
            if heartbeat is not None and time.time() - _mtime(heartbeat) > HEARTBEAT_S:
                break  # the demo job stopped running (paused)
    finally:
        await agent.stop(reset=False)  # requests in flight finish; the spool is sealed
        _write_json(progress, _progress(share, start, played, done))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _us_s(t: float) -> int:
    return int(round(t * 1_000_000))


def _progress(share: Share, start: float, played: float, done: bool) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "release": share.release,
        "from": start,
        "played_until": played,
        "done": done,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="One simulated agent process of the live demo.")
    p.add_argument("--spool", required=True)
    p.add_argument("--progress", required=True)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--anchor", required=True)
    p.add_argument("--history-days", type=int, default=30)
    p.add_argument("--release", required=True)
    p.add_argument("--release-start", type=float, required=True)
    p.add_argument("--release-end", type=float, default=math.inf)
    p.add_argument("--from", dest="start", type=float, required=True)
    p.add_argument("--skip-features-before", type=float, default=-math.inf)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--parent-pid", type=int, default=None)
    p.add_argument("--heartbeat", default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    sim = DemoSimulator(args.seed, datetime.fromisoformat(args.anchor), args.history_days)
    share = Share(args.release, args.release_start, args.release_end, args.skip_features_before)
    asyncio.run(
        run_agent(
            Path(args.spool),
            Path(args.progress),
            sim,
            share,
            args.start,
            speed=args.speed,
            parent_pid=args.parent_pid,
            heartbeat=Path(args.heartbeat) if args.heartbeat else None,
        )
    )
    return 0


# -------------------------------------------------------------------------------- the source


@dataclass
class _Agent:
    share: Share
    process: subprocess.Popen[bytes]
    progress: Path


class LiveDemoSource:
    """The embedded default: 30 days of simulated history written directly, then the live
    traffic played by simulated agents through the SDK into `spool_dir` (collected by the
    `spool` job), and the other collectors' tables written directly minute by minute."""

    name = "demo"

    def __init__(
        self,
        spool_dir: str | Path,
        state_dir: str | Path,
        *,
        seed: int = 7,
        history_days: int = 30,
        now: Any = None,
        speed: float = 1.0,
    ) -> None:
        self.spool_dir = Path(spool_dir)
        self.state_dir = Path(state_dir)
        self.seed = seed
        self.history_days = history_days
        self.speed = speed
        self.now = now or (lambda: datetime.now(UTC))
        self.agents: dict[str, _Agent] = {}
        self.finished: set[str] = set()  # releases whose agent played its last row
        self._sim: DemoSimulator | None = None

    def _simulator(self, anchor: datetime) -> DemoSimulator:
        if self._sim is None or self._sim.anchor != anchor:
            self._sim = DemoSimulator(self.seed, anchor, self.history_days)
        return self._sim

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        state = watermarks.get(STREAM)
        if not state:
            yield from self._backfill()
            return
        mark = json.loads(state)
        anchor = datetime.fromisoformat(mark["anchor"])
        until = datetime.fromisoformat(mark["until"]).timestamp()
        sim = self._simulator(anchor)
        self._beat()
        if not self.agents or self._lost_an_agent():
            self.stop()  # any others write their last report too
            yield from self._take_over(sim, anchor, until)
            return
        played = self._supervise(sim, until)
        if played > until:
            yield from self._direct(sim, anchor, until, played, AGENT_TABLES)

    # -- the three situations --------------------------------------------------------------
    def _backfill(self) -> Iterator[Batch]:
        """First start: the history, written directly; then agents from its end on."""
        self._beat()
        last = None
        for batch in DemoSource(self.seed, self.history_days, self.now).fetch({}):
            last = batch.watermark or last
            yield batch
        if last is not None:  # committed with the batch above before we get here
            mark = json.loads(last)
            anchor = datetime.fromisoformat(mark["anchor"])
            until = datetime.fromisoformat(mark["until"]).timestamp()
            # nothing was played before the hand-over: calls under way get all their uses
            self._start_agents(self._simulator(anchor), until, -math.inf)

    def _take_over(self, sim: DemoSimulator, anchor: datetime, until: float) -> Iterator[Batch]:
        """A (re)started service: write the rows since the last agents reported, directly,
        and start new agents from now."""
        played = self._last_played()
        boundary = max(_floor_minute(self.now()).timestamp(), until, played)
        if boundary > until:
            yield from self._direct(
                sim, anchor, until, boundary, (), agents_from=max(until, played), played=played
            )
        self._start_agents(sim, boundary, played)

    def _supervise(self, sim: DemoSimulator, until: float) -> float:
        """Start the next release's agent ahead of its deploy, and return the time before
        which every agent has run (and flushed) everything."""
        horizon = self.now().timestamp() + LOOKAHEAD_S
        for share in releases_between(sim, until, horizon):
            if share.release not in self.agents and share.release not in self.finished:
                self._spawn(sim, share, until, -math.inf)
        reports = [_read_json(a.progress) for a in self.agents.values()]
        played = [float(r["played_until"]) for r in reports if r and not r.get("done")]
        return min(played, default=until)

    def _lost_an_agent(self) -> bool:
        """Whether an agent exited before playing its last row (killed, crashed, or stopped
        for want of a heartbeat); agents that finished their release are let go."""
        for release, agent in list(self.agents.items()):
            if agent.process.poll() is None:
                continue
            if not _read_json(agent.progress).get("done"):
                return True
            self.finished.add(release)
            del self.agents[release]
            agent.progress.unlink(missing_ok=True)
        return False

    def _beat(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "heartbeat").touch()

    # -- helpers ---------------------------------------------------------------------------
    def _direct(
        self,
        sim: DemoSimulator,
        anchor: datetime,
        start: float,
        end: float,
        skip: tuple[str, ...],
        *,
        agents_from: float | None = None,
        played: float = -math.inf,
    ) -> Iterator[Batch]:
        """The simulator's rows emitted in [start, end) straight to the warehouse (three days
        per chunk, as the backfill), except the tables in `skip`. With `agents_from`, agent
        tables only from then on (agents shipped the earlier ones), and without the turns and
        feature uses that agents had recorded before `played` for calls still going on."""
        chunk = DemoSource.chunk_days * 86400.0
        a = start
        while a < end:
            b = min(a + chunk, end)
            tables = sim.window(_us_s(a), _us_s(b))
            if agents_from is not None:
                later = sim.window(_us_s(max(a, agents_from)), _us_s(b))
                for name in AGENT_TABLES:
                    tables[name] = later[name]
                if math.isfinite(played):
                    before = pa.scalar(_us_s(played), pa.timestamp("us", tz="UTC"))
                    for name, column in (
                        ("voice_turns", "started_at"),
                        ("feature_usage", "used_at"),
                    ):
                        t = tables[name]
                        tables[name] = t.filter(pc.greater_equal(t[column], before))
            mark = json.dumps(
                {"anchor": anchor.isoformat(), "until": datetime.fromtimestamp(b, UTC).isoformat()}
            )
            batches = [(n, t) for n, t in tables.items() if n not in skip and t.num_rows]
            if not batches:  # still move the watermark
                batches = [("probe_results", tables["probe_results"])]
            for i, (name, table) in enumerate(batches):
                last = i == len(batches) - 1
                yield Batch(name, table, stream=STREAM, watermark=mark if last else None)
            a = b

    def _start_agents(self, sim: DemoSimulator, start: float, played: float) -> None:
        horizon = self.now().timestamp() + LOOKAHEAD_S
        for share in releases_between(sim, start, horizon):
            self._spawn(sim, share, start, played)

    def _spawn(self, sim: DemoSimulator, share: Share, start: float, played: float) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        progress = self.state_dir / f"agent-{share.release}.json"
        _write_json(progress, _progress(share, start, start, False))
        options = {
            "spool": str(self.spool_dir),
            "progress": str(progress),
            "seed": str(self.seed),
            "anchor": sim.anchor.isoformat(),
            "history-days": str(self.history_days),
            "release": share.release,
            "release-start": repr(share.start),
            "release-end": repr(share.end),
            "from": repr(start),
            "skip-features-before": repr(played),  # may be -inf: passed as --name=value
            "speed": repr(self.speed),
            "parent-pid": str(os.getpid()),
            "heartbeat": str(self.state_dir / "heartbeat"),
        }
        args = [sys.executable, "-m", "collectors.sources.demo_live"]
        args += [f"--{name}={value}" for name, value in options.items()]
        log_file = open(self.state_dir / f"agent-{share.release}.log", "ab")  # noqa: SIM115
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT)
        log_file.close()
        self.agents[share.release] = _Agent(share, process, progress)
        log.info(
            "demo: agent for release %s playing live traffic (pid %d)", share.release, process.pid
        )

    def _last_played(self) -> float:
        """Where the agents of an earlier service stopped: the earliest report of an agent
        that had not finished (waiting a moment for one still flushing), or -inf."""
        reports = []
        for path in sorted(self.state_dir.glob("agent-*.json")):
            report = _read_json(path)
            pid = report.get("pid")
            deadline = time.monotonic() + 5.0
            while pid and _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
                report = _read_json(path)
            if report and not report.get("done"):
                reports.append(float(report["played_until"]))
            path.unlink(missing_ok=True)
        return min(reports, default=-math.inf)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the agents (they flush and seal their spool files first)."""
        for agent in self.agents.values():
            if agent.process.poll() is None:
                agent.process.send_signal(signal.SIGTERM)
        for agent in self.agents.values():
            try:
                agent.process.wait(timeout)
            except subprocess.TimeoutExpired:
                agent.process.kill()
        self.agents.clear()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":
    sys.exit(main())
