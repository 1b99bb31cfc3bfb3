"""The middleware through a real uvicorn server on 127.0.0.1 (free port), with real sockets."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from collectors.instrumentation import (
    configure_monitoring,
    flush_monitoring,
    reset_monitoring,
)
from collectors.instrumentation.sinks import MemorySink


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def fresh_sdk():
    reset_monitoring()
    yield
    reset_monitoring()


@pytest.fixture
def server():
    app = FastAPI()

    @app.get("/v1/calls/{call_id}")
    async def call(call_id: str):
        return {"call_id": call_id}

    @app.get("/v1/boom")
    async def boom():
        raise KeyError("missing voice profile 1234")

    sink = MemorySink()
    configure_monitoring(
        app,
        {
            "security": {
                "enforce": True,
                "rate_limits": {"/v1/calls/hot": {"limit": 3, "window": 60}},
            }
        },
        sink=sink,
    )
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", sink
    srv.should_exit = True
    thread.join(10)


def test_requests_errors_limits_and_health_over_real_http(server):
    base, sink = server
    with httpx.Client(base_url=base) as client:
        assert [client.get(f"/v1/calls/c{i}").status_code for i in range(5)] == [200] * 5
        # uvicorn closes the connection after an unhandled exception: do not reuse it
        assert client.get("/v1/boom", headers={"connection": "close"}).status_code == 500
        assert [client.get("/v1/calls/hot").status_code for _ in range(4)] == [200] * 3 + [429]
        health = client.get("/monitoring/health")
    assert health.status_code == 200 and health.json() == {"status": "up"}  # nothing more
    flush_monitoring()
    requests = sink.table("requests")
    assert {r["route"] for r in requests} == {
        "/v1/calls/{call_id}",
        "/v1/boom",
        "/v1/calls/hot",
    }  # the 429 was never routed
    assert all(r["ip"] == "127.0.0.1" for r in requests)
    assert sum(r["status_code"] == 429 for r in requests) == 1
    assert [e["error_type"] for e in sink.table("errors")] == ["KeyError"]
    assert sink.table("app_starts")  # uvicorn's lifespan startup marked the app ready
