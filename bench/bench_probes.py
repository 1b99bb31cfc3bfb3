"""CPU cost of 200 HTTP probes every 10 s (the aim: under 5 % of one core).

Run: .venv/bin/python bench/bench_probes.py [probes] [interval_s] [duration_s]
Starts one loopback HTTP server (in a separate process, so its CPU is not counted), builds
`probes` http_probe sources with distinct URLs, and runs each on its own interval in a thread
pool, the way the scheduler does, for `duration_s`. Reports this process's CPU seconds per
wall second; fetch only (the warehouse write is measured separately with --engine).

--service measures what `workbench serve` does with such a config: build_sources groups HTTP
probes that share a schedule into one source, so each interval is one run (one transaction and
one publish) for all 200 targets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.sources.probes import http_probe  # noqa: E402

SERVER = """
import sys
sys.path.insert(0, {root!r})
from tests.integration.http_misbehaving import Misbehaving
s = Misbehaving().__enter__()
print(s.url, flush=True)
sys.stdin.read()
"""


def main(n: int, interval: float, duration: float, engine: bool) -> None:
    root = str(Path(__file__).resolve().parents[1])
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    url = server.stdout.readline().strip()
    probes = [http_probe(f"p{i}", f"{url}/ok?probe={i}") for i in range(n)]
    con = None
    if engine:
        from collectors.engine import run_source
        from collectors.warehouse import open_warehouse

        con = open_warehouse(Path(tempfile.mkdtemp()) / "w.duckdb")

    def run(p):
        if con is not None:
            return run_source(con, p).status == "ok"
        return [b.rows[0]["status"] for b in p.fetch({})] == ["up"]

    ok = checks = 0
    with ThreadPoolExecutor(max_workers=16) as pool:
        start = time.monotonic()
        cpu0 = time.process_time()
        # Spread the probes evenly over the interval, as a scheduler with jitter would.
        due = [start + interval * i / n for i in range(n)]
        while time.monotonic() - start < duration:
            now = time.monotonic()
            ready = [i for i in range(n) if due[i] <= now]
            for i in ready:
                due[i] += interval
            for result in pool.map(run, [probes[i] for i in ready]):
                ok += result
                checks += 1
            time.sleep(0.01)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - start
    server.stdin.close()
    server.wait()
    print(f"{n} probes every {interval:g} s for {wall:.0f} s: {checks} checks, {ok} up")
    print(f"CPU {cpu:.2f} s over {wall:.0f} s wall = {100 * cpu / wall:.2f} % of one core"
          f"{' (with warehouse writes)' if engine else ' (fetch only)'}; "
          f"{1000 * cpu / max(checks, 1):.2f} ms CPU per check; pid {os.getpid()}")  # fmt: skip


def service_mode(n: int, interval: float, duration: float) -> None:
    """One grouped ProbeSource run every `interval` through run_source and publish."""
    from collectors.engine import run_source
    from collectors.publish import publish
    from collectors.sources.probes import ProbeSource, http_check
    from collectors.warehouse import open_warehouse

    root = str(Path(__file__).resolve().parents[1])
    server = subprocess.Popen([sys.executable, "-c", SERVER.format(root=root)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    url = server.stdout.readline().strip()
    source = ProbeSource("probes:http@10s", [http_check(f"p{i}", f"{url}/ok?probe={i}")
                                             for i in range(n)])  # fmt: skip
    tmp = Path(tempfile.mkdtemp())
    con = open_warehouse(tmp / "w.duckdb")
    start = time.monotonic()
    cpu0 = time.process_time()
    runs = 0
    while time.monotonic() - start < duration:
        tick = time.monotonic()
        assert run_source(con, source).status == "ok"
        publish(con, tmp / "serving")
        runs += 1
        time.sleep(max(0.0, interval - (time.monotonic() - tick)))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - start
    up = con.execute("SELECT count(*) FILTER (WHERE status = 'up'), count(*) FROM probe_results")
    print(
        f"{n} probes as one source every {interval:g} s for {wall:.0f} s: {runs} runs, "
        f"{up.fetchone()}  (up, checks)"
    )
    print(
        f"CPU {cpu:.2f} s over {wall:.0f} s wall = {100 * cpu / wall:.2f} % of one core "
        "(checks + warehouse writes + publish)"
    )
    server.stdin.close()
    server.wait()


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [float(a) for a in sys.argv[1:] if not a.startswith("--")]
    n, interval, duration = (args + [200, 10, 60][len(args) :])[:3]
    if "--service" in flags:
        service_mode(int(n), interval, duration)
    else:
        main(int(n), interval, duration, "--engine" in flags)
