"""The page at /monitoring/dashboard: the agent's live state from the SDK's own memory.

One self-contained HTML page: inline CSS, an inline SVG chart, no script, no external asset,
no link built from data. It reloads itself every REFRESH_S seconds. Every text that comes
from traffic (routes, error types and messages) is escaped, with bidirectional and other
control characters made visible, so a hostile route can neither inject markup nor reorder
what is shown.
"""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, datetime
from typing import Any

from collectors.instrumentation.health import health_monitor
from collectors.instrumentation.live import live

REFRESH_S = 10
# A page with no script and no resources: a stricter policy than it needs is free.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]"
)


def esc(value: Any, limit: int = 300) -> str:
    """Text for HTML: cut, controls and bidi marks shown as \\uXXXX, then escaped."""
    text = value if isinstance(value, str) else "" if value is None else str(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    text = _INVISIBLE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    return html.escape(text, quote=True)


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.2f}"


def _pct(v: float) -> str:
    return f"{v * 100:.1f} %"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _bars(per_minute: list[tuple[int, int]]) -> str:
    """Requests per minute as an inline SVG bar chart (no script, no external asset)."""
    width, height, gap = 600, 80, 2
    n = max(1, len(per_minute))
    peak = max((c for _, c in per_minute), default=0) or 1
    bar = width / n
    rects = []
    for i, (minute, count) in enumerate(per_minute):
        h = round(height * count / peak, 1)
        label = esc(f"{datetime.fromtimestamp(minute, UTC):%H:%M} UTC: {count} requests")
        rects.append(
            f'<rect x="{i * bar:.1f}" y="{height - h}" width="{bar - gap:.1f}" height="{h}">'
            f"<title>{label}</title></rect>"
        )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="requests per minute">{"".join(rects)}</svg>'
    )


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{esc(empty)}</p>'
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def dashboard_data(books: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the page shows, as plain data (also served as JSON with ?format=json)."""
    return {
        "generated_at": time.time(),
        "health": health_monitor.status(),
        "traffic": live.snapshot(),
        "pipeline": books or {},
    }


def render(data: dict[str, Any]) -> str:
    health = data["health"]
    traffic = data["traffic"]
    books = data["pipeline"]
    status = health["status"]
    routes = [
        [
            esc(r["method"]),
            f"<code>{esc(r['route'])}</code>",
            f"{r['requests']:,}",
            f"{r['rate_per_s']:.2f}",
            _pct(r["error_rate"]),
            _ms(r["p50_ms"]),
            _ms(r["p95_ms"]),
            _ms(r["p99_ms"]),
        ]
        for r in traffic["routes"]
    ]
    stages = [
        [
            esc(s["stage"]),
            f"{s['turns']:,}",
            _ms(s["p50_ms"]),
            _ms(s["p95_ms"]),
            _ms(s["p99_ms"]),
        ]
        for s in traffic["stages"]
    ]
    groups = [
        [
            f"<code>{esc(g['error_type'], 120)}</code>",
            esc(g["message"], 200),
            f"<code>{esc(g['route'], 120)}</code>" if g["route"] else "-",
            f"{g['count']:,}",
            esc(_when(g["last_seen"])),
        ]
        for g in traffic["error_groups"][:20]
    ]
    checks = [
        [
            esc(c["name"], 100),
            esc(c["kind"]),
            f'<span class="s-{esc(c["status"])}">{esc(c["status"])}</span>',
            "yes" if c["critical"] else "no",
            _ms(c["latency_ms"]),
            esc(c["error"], 200) if c["error"] else "-",
        ]
        for c in health["checks"]
    ]
    sink = books.get("sink_type", "")
    sink_state = "up" if books.get("sink_up", True) else "failing"
    since = books.get("sink_failing_since")
    tiles = [
        ("Health", f'<span class="s-{esc(status)}">{esc(status)}</span>'),
        ("Requests/s (last minute)", f"{traffic['rate_last_minute_per_s']:.2f}"),
        (f"Requests ({traffic['window_minutes']} min)", f"{traffic['requests']:,}"),
        ("5xx rate", _pct(traffic["server_error_rate"])),
        ("Errors recorded", f"{traffic['errors_recorded']:,}"),
        (
            f"Sink {esc(sink)}",
            esc(sink_state) + (f"<small> since {esc(_when(since))}</small>" if since else ""),
        ),
        ("Rows dropped", f"{books.get('dropped_total', 0):,}"),
    ]
    tile_html = "".join(
        f'<div class="tile"><div class="k">{k}</div><div class="v">{v}</div></div>'
        for k, v in tiles
    )
    about = " · ".join(
        esc(x)
        for x in (
            health.get("service") or "agent",
            f"release {health['release']}" if health.get("release") else None,
            health.get("host"),
            f"up {health['uptime_s']:.0f} s" if health.get("uptime_s") is not None else None,
        )
        if x
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="{REFRESH_S}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Monitoring: {esc(status)}</title>
<style>
body{{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1f24;background:#fafafa}}
h1{{font-size:1.3rem;margin:0}} h2{{font-size:1.05rem;margin:1.6rem 0 .5rem}}
.about{{color:#57606a;margin:.2rem 0 1rem}}
.tiles{{display:flex;flex-wrap:wrap;gap:.6rem}}
.tile{{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.5rem .8rem;min-width:9rem}}
.k{{color:#57606a;font-size:.8rem}} .v{{font-size:1.2rem;font-weight:600}}
table{{border-collapse:collapse;background:#fff;width:100%;max-width:70rem}}
th,td{{border-bottom:1px solid #eaeef2;padding:.3rem .5rem;text-align:left;vertical-align:top}}
td:nth-child(n+3){{font-variant-numeric:tabular-nums}}
code{{word-break:break-all}} rect{{fill:#0969da}} .empty{{color:#57606a}}
.s-healthy,.s-up{{color:#1a7f37}} .s-degraded,.s-pending{{color:#9a6700}} .s-down{{color:#cf222e}}
</style></head><body>
<h1>Voice agent monitoring</h1>
<p class="about">{about} · refreshed every {REFRESH_S} s · {esc(_when(data["generated_at"]))}</p>
<div class="tiles">{tile_html}</div>
<h2>Requests per minute (last {traffic["window_minutes"]} minutes)</h2>
{_bars(traffic["per_minute"])}
<h2>Latency per route (ms, last {traffic["window_minutes"]} minutes)</h2>
{_table(["Method", "Route", "Requests", "Req/s", "5xx", "p50", "p95", "p99"], routes, "No requests yet.")}
<h2>Voice pipeline stages (ms)</h2>
{_table(["Stage", "Turns", "p50", "p95", "p99"], stages, "No voice turns yet.")}
<h2>Recent error groups</h2>
{_table(["Type", "Message", "Route", "Count", "Last seen"], groups, "No errors recorded.")}
<h2>Checks and dependencies</h2>
{_table(["Name", "Kind", "Status", "Critical", "Latency ms", "Problem"], checks, "No checks.")}
</body></html>
"""
