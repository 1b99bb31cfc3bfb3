"""The Health page explains an overspent error budget beside a quiet burn-rate alert: the
budget is the period's, the alert watches its recent windows only."""

from __future__ import annotations

from datetime import timedelta

from analysis.uptime import BurnWindow, SloStatus, budget_explanation


def _slo(good: int, total: int, firing: bool) -> SloStatus:
    allowed = (1 - 0.999) * total
    windows = [
        BurnWindow(timedelta(hours=1), timedelta(minutes=5), 14.4, 0.5, 0.2, firing),
        BurnWindow(timedelta(hours=6), timedelta(minutes=30), 6.0, 0.4, 0.1, False),
    ]
    return SloStatus(0.999, 30, good, total, good / total, 1 - (total - good) / allowed, windows)


def test_an_overspent_budget_with_a_quiet_alert_is_explained():
    text = budget_explanation(_slo(99_780, 100_000, firing=False))
    assert "220 bad events of 100,000" in text and "allows 100" in text
    assert "overspent by 120%" in text  # 220 bad of 100 allowed: -120 % remaining
    assert "quiet because it watches only the last 1 h, 6 h" in text


def test_a_firing_alert_and_a_healthy_budget_read_differently():
    assert "is firing" in budget_explanation(_slo(99_780, 100_000, firing=True))
    healthy = budget_explanation(_slo(99_950, 100_000, firing=False))
    assert "50% of the budget is left" in healthy and "quiet" in healthy
