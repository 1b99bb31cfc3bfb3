"""A simulated voice agent that uses only the monitoring SDK's public API.

`play(workload, config)` runs a Workload (calls with their turns, requests, feedback, logins,
errors... and the truth they imply) through `configure_monitoring` exactly as a production
agent would; `SimulatedAgent` plays one in real time. The demo's live traffic and the
golden-path tests both use it, so the whole production path runs every minute of `make run`.
"""

from collectors.simulated_agent.agent import AgentReport, SimulatedAgent, play
from collectors.simulated_agent.asgi_app import LOGIN_ROUTE
from collectors.simulated_agent.workload import (
    CAPTURE,
    RAISE,
    TRACK,
    VOICE,
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

__all__ = [
    "CAPTURE",
    "LOGIN_ROUTE",
    "RAISE",
    "TRACK",
    "VOICE",
    "AgentReport",
    "Call",
    "Failure",
    "FeatureUse",
    "Feedback",
    "Login",
    "Quality",
    "Request",
    "SecurityEvent",
    "SimulatedAgent",
    "Turn",
    "Workload",
    "play",
]
