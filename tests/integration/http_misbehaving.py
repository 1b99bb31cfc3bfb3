"""Real HTTP servers on 127.0.0.1 that misbehave, and stand-ins for Railway and LiveKit.

`Misbehaving` routes: /ok, /slow?s=2, /500, /flap (200, 500, 200, ...), /close (drops the
connection without answering), /redirect-loop, /status?code=503. `Misbehaving(tls=True)` serves
the same over TLS with a freshly generated self-signed certificate (cryptography).

`RailwayStandIn` speaks Railway's GraphQL over JSON (POST /graphql/v2) with Bearer or
Project-Access-Token auth; `LiveKitStandIn` answers `GET /` like livekit-server's health check
and `POST /twirp/livekit.RoomService/ListRooms` (Twirp JSON) verifying the HS256 JWT and its
roomList grant.
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt


class _Server:
    handler: type[BaseHTTPRequestHandler]

    def __init__(self, tls: bool = False) -> None:
        owner = self

        class Handler(self.handler):  # type: ignore[misc, valid-type]
            server_owner = owner

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # clients hang up on purpose
        self.tls = tls
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            cert, key = self_signed_cert()
            ctx.load_cert_chain(cert, key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.hits = 0

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_owner: Any

    def log_message(self, *args: Any) -> None:
        pass

    def send(self, status: int, body: str | bytes = b"", headers: dict[str, str] | None = None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


class _MisbehavingHandler(_Base):
    def do_GET(self) -> None:
        owner = self.server_owner
        owner.hits += 1
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        path = parts.path
        if path == "/ok":
            self.send(200, "OK")
        elif path == "/slow":
            time.sleep(float(q.get("s", ["2"])[0]))
            self.send(200, "late")
        elif path == "/500":
            self.send(500, "Internal Server Error")
        elif path == "/status":
            self.send(int(q["code"][0]), "status")
        elif path == "/flap":
            owner.flap = getattr(owner, "flap", 0) + 1
            self.send(200 if owner.flap % 2 else 500, "flap")
        elif path == "/close":
            self.close_connection = True
            self.connection.close()
        elif path == "/redirect-loop":
            self.send(302, "", {"Location": "/redirect-loop-b"})
        elif path == "/redirect-loop-b":
            self.send(302, "", {"Location": "/redirect-loop"})
        else:
            self.send(404, "not found")

    do_HEAD = do_GET


class Misbehaving(_Server):
    handler = _MisbehavingHandler


def self_signed_cert() -> tuple[str, str]:
    """A throwaway self-signed certificate for 127.0.0.1 (paths to cert and key PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    d = Path(tempfile.mkdtemp(prefix="wb-tls-"))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(d / "cert.pem"), str(d / "key.pem")


# ---- Railway ---------------------------------------------------------------------------------


class _RailwayHandler(_Base):
    def do_POST(self) -> None:
        owner: RailwayStandIn = self.server_owner
        owner.hits += 1
        payload = json.loads(self.body() or b"{}")
        owner.requests.append({"headers": dict(self.headers), "payload": payload})
        if owner.rate_limited:
            owner.rate_limited -= 1
            self.send(429, json.dumps({"message": "rate limited"}),
                      {"Retry-After": str(owner.retry_after), "Content-Type": "application/json"})  # fmt: skip
            return
        auth = self.headers.get("Authorization", "")
        project_token = self.headers.get("Project-Access-Token")
        if auth != f"Bearer {owner.token}" and project_token != owner.token:
            self.send(200, json.dumps({"errors": [{"message": "Not Authorized"}], "data": None}),
                      {"Content-Type": "application/json"})  # fmt: skip
            return
        variables = payload.get("variables") or {}
        inp = variables.get("input") or {}
        if inp.get("projectId") != owner.project_id:
            self.send(200, json.dumps({"errors": [{"message": "Project not found"}], "data": None}),
                      {"Content-Type": "application/json"})  # fmt: skip
            return
        nodes = [d for d in owner.deployments
                 if not inp.get("serviceId") or d.get("serviceId") == inp["serviceId"]]  # fmt: skip
        nodes = sorted(nodes, key=lambda d: d["createdAt"], reverse=True)[
            : variables.get("first", 20)
        ]
        body = {"data": {"deployments": {"edges": [{"node": n} for n in nodes]}}}
        self.send(200, json.dumps(body), {"Content-Type": "application/json"})


class RailwayStandIn(_Server):
    handler = _RailwayHandler

    def __init__(self, token: str = "rw-token", project_id: str = "proj-1") -> None:
        super().__init__()
        self.token, self.project_id = token, project_id
        self.deployments: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self.rate_limited = 0
        self.retry_after = 1
        self.endpoint = self.url + "/graphql/v2"

    def add(self, dep_id: str, status: str, created_at: str, **meta: Any) -> None:
        self.deployments = [d for d in self.deployments if d["id"] != dep_id]
        self.deployments.append({
            "id": dep_id, "status": status, "createdAt": created_at, "updatedAt": created_at,
            "statusUpdatedAt": created_at, "serviceId": "svc-1", "environmentId": "env-1",
            "meta": meta,
        })  # fmt: skip


# ---- LiveKit ---------------------------------------------------------------------------------


class _LiveKitHandler(_Base):
    def do_GET(self) -> None:
        owner: LiveKitStandIn = self.server_owner
        owner.hits += 1
        if urlsplit(self.path).path != "/":
            self.send(404, "404 page not found")
        elif owner.ready:
            self.send(200, "OK", {"Content-Type": "text/plain"})
        else:
            self.send(406, "Not Ready\nNode Updated At 2026-01-01T00:00:00Z")

    def do_POST(self) -> None:
        owner: LiveKitStandIn = self.server_owner
        owner.hits += 1
        body = self.body()
        if urlsplit(self.path).path != "/twirp/livekit.RoomService/ListRooms":
            self.send(404, json.dumps({"code": "bad_route", "msg": "no handler"}))
            return
        auth = self.headers.get("Authorization", "")
        try:
            claims = jwt.decode(auth.removeprefix("Bearer "), owner.api_secret,
                                algorithms=["HS256"], leeway=5)  # fmt: skip
            if claims.get("iss") != owner.api_key or not claims.get("video", {}).get("roomList"):
                raise jwt.InvalidTokenError("missing roomList grant")
        except jwt.InvalidTokenError as exc:
            self.send(401, json.dumps({"code": "unauthenticated", "msg": str(exc)}),
                      {"Content-Type": "application/json"})  # fmt: skip
            return
        json.loads(body or b"{}")
        rooms = [{"sid": f"RM_{n}", "name": n, "numParticipants": 2} for n in owner.rooms]
        self.send(200, json.dumps({"rooms": rooms}), {"Content-Type": "application/json"})


class LiveKitStandIn(_Server):
    handler = _LiveKitHandler

    def __init__(self, api_key: str = "APIkey", api_secret: str = "s" * 32) -> None:
        super().__init__()
        self.api_key, self.api_secret = api_key, api_secret
        self.ready = True
        self.rooms = ["support-1"]
        self.ws_url = self.url.replace("http://", "ws://")


def serve(factory: Callable[[], _Server]) -> _Server:
    return factory().__enter__()
