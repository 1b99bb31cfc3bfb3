"""Experiments defined in the control store reach the agent's SDK through a PostgREST-like
server on 127.0.0.1: upserted by key through supabase-py, read back by the SDK's refresh, so
starting, pausing and stopping changes which variant callers get. Failures are reported and
retried, never raised."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from collectors.control import ControlStore, SavedExperiment
from collectors.experiment_sync import experiment_rows, sync_from_config
from collectors.instrumentation.experiments import Experiments

API_KEY = "service-role-test-key"


class ExperimentsTable:
    """POST (upsert on `on_conflict`, merge-duplicates) and GET of /rest/v1/experiments."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.posts: list[dict] = []
        self.faults: deque[int] = deque()
        table = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> bool:
                if self.headers.get("apikey") != API_KEY:
                    self._send(401, {"message": "Invalid API key"})
                    return True
                if urlsplit(self.path).path != "/rest/v1/experiments":
                    self._send(404, {"message": "not found"})
                    return True
                if table.faults:
                    self._send(table.faults.popleft(), {"message": "unavailable"})
                    return True
                return False

            def do_GET(self):
                if not self._refused():
                    self._send(200, list(table.rows.values()))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"[]")
                query = dict(parse_qsl(urlsplit(self.path).query))
                table.posts.append(
                    {"query": query, "prefer": self.headers.get("Prefer", ""), "body": body}
                )
                if self._refused():
                    return
                conflict = query.get("on_conflict")
                if (
                    conflict != "key"
                    or "resolution=merge-duplicates" not in table.posts[-1]["prefer"]
                ):
                    self._send(409, {"message": "duplicate key value violates unique constraint"})
                    return
                for row in body if isinstance(body, list) else [body]:
                    merged = {**table.rows.get(row["key"], {}), **row}
                    table.rows[row["key"]] = merged
                self._send(201, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def supabase():
    table = ExperimentsTable()
    yield table
    table.close()


@pytest.fixture
def store(tmp_path):
    s = ControlStore(tmp_path / "control.sqlite")
    s.save_experiment(
        SavedExperiment(
            key="prompt-v3",
            name="Shorter prompt",
            variants=("control", "short"),
            weights=(1, 2),
            primary_metrics=("resolved_rate",),
            hypothesis="Shorter prompts resolve more calls",
        )
    )
    return s


def sdk_view(url: str) -> Experiments:
    """What a running agent sees after its background refresh."""
    sdk = Experiments()
    sdk.configure(
        {"definitions": {}, "refresh_interval": 3600, "source": "supabase"},
        {"url": url, "api_key": API_KEY},
    )
    assert sdk.refresh() is True
    return sdk


def variants_for(sdk: Experiments, n: int = 300) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in range(n):
        variant, exposed = sdk.definitions()["prompt-v3"].variant_for(f"call-{i}")
        key = variant if exposed else "not exposed"
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_start_pause_stop_on_the_page_changes_what_callers_get(store, supabase):
    job = sync_from_config(store, supabase.url, API_KEY)
    assert job.run_once().ok  # a draft is synced: callers still get control, unexposed
    assert variants_for(sdk_view(supabase.url)) == {"not exposed": 300}

    store.set_experiment_status("prompt-v3", "running")
    result = job.run_once()
    assert result.ok and result.synced == 1
    row = supabase.rows["prompt-v3"]
    assert row["status"] == "running" and row["variants"] == ["control", "short"]
    assert sum(row["weights"]) == 1.0 and row["weights"][1] == pytest.approx(2 / 3)
    assert row["description"] == "Shorter prompts resolve more calls"
    counts = variants_for(sdk_view(supabase.url))
    assert set(counts) == {"control", "short"} and counts["short"] > counts["control"]

    store.set_experiment_status("prompt-v3", "paused")
    assert job.run_once().ok
    assert variants_for(sdk_view(supabase.url)) == {"not exposed": 300}

    store.set_experiment_status("prompt-v3", "stopped")
    assert job.run_once().ok
    assert supabase.rows["prompt-v3"]["status"] == "stopped"
    assert len(supabase.rows) == 1  # upserted by key, never duplicated


def test_unchanged_experiments_are_not_sent_again(store, supabase):
    job = sync_from_config(store, supabase.url, API_KEY)
    assert job.run_once().synced == 1
    posts = len(supabase.posts)
    assert job.run_once().message == "experiments unchanged since the last sync"
    assert len(supabase.posts) == posts


def test_a_seed_set_in_supabase_is_kept(store, supabase):
    job = sync_from_config(store, supabase.url, API_KEY)
    job.run_once()
    supabase.rows["prompt-v3"]["seed"] = "kept-seed"
    store.set_experiment_status("prompt-v3", "running")
    job.run_once()
    assert supabase.rows["prompt-v3"]["seed"] == "kept-seed"
    assert "seed" not in experiment_rows(store.experiments().values())[0]


@pytest.mark.parametrize("status", [503, 401])
def test_failures_are_reported_then_retried(store, supabase, status):
    job = sync_from_config(store, supabase.url, API_KEY)
    supabase.faults.append(status)
    failed = job.run_once()
    assert not failed.ok and "could not sync experiments to Supabase" in failed.message
    assert store.service_info()["experiment_sync"].startswith("failed")
    retried = job.run_once()
    assert retried.ok and retried.synced == 1
    assert "synced" in store.service_info()["experiment_sync"]


def test_unreachable_supabase_is_a_message_not_an_exception(store):
    job = sync_from_config(store, "http://127.0.0.1:9", API_KEY)
    result = job.run_once()
    assert not result.ok and "retrying" in result.message


def test_no_supabase_configured_means_no_job(store):
    assert sync_from_config(store, None, None) is None
    assert sync_from_config(store, "http://127.0.0.1:1", "") is None


def test_the_service_syncs_a_started_experiment_on_its_next_poll(tmp_path, store, supabase):
    import time

    from collectors.config import load_config
    from collectors.jobs import poll_tasks
    from collectors.service import CollectorService, DataPaths, Job
    from tests.integration.sources_for_tests import CountingSource

    (tmp_path / "none.toml").write_text("")
    config = load_config(
        tmp_path / "none.toml", env={"SUPABASE_URL": supabase.url, "SUPABASE_API_KEY": API_KEY}
    )
    svc = CollectorService(
        DataPaths(tmp_path),
        {"counting": Job(CountingSource(), {"kind": "interval", "seconds": 3600})},
        poll_seconds=0.2,
    )
    svc.control = store  # the store the page wrote to
    svc.poll_tasks = poll_tasks(config, store)
    assert len(svc.poll_tasks) == 1
    thread = threading.Thread(target=svc.serve_forever, daemon=True)
    thread.start()
    try:
        store.set_experiment_status("prompt-v3", "running")
        deadline = time.monotonic() + 15
        while (
            time.monotonic() < deadline
            and supabase.rows.get("prompt-v3", {}).get("status") != "running"
        ):
            time.sleep(0.1)
        assert supabase.rows["prompt-v3"]["status"] == "running"
        assert sdk_view(supabase.url).assign("prompt-v3", "caller-1") in ("control", "short")
    finally:
        svc.stop()
        thread.join(timeout=20)


def test_without_supabase_the_service_has_no_poll_tasks(tmp_path, store):
    from collectors.config import load_config
    from collectors.jobs import poll_tasks

    (tmp_path / "none.toml").write_text("")
    assert poll_tasks(load_config(tmp_path / "none.toml", env={}), store) == []
