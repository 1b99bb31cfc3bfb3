"""[alerts] in workbench.toml: the defaults load, a file rule replaces or joins them, and each
mistake is one sentence naming the setting (the configuration's own validator)."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.alerts.settings import rule_from_definition
from collectors.config import ConfigError, load_config


def config(tmp_path: Path, text: str):
    path = tmp_path / "workbench.toml"
    path.write_text(text)
    return load_config(path, env={})


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as found:
        config(tmp_path, text)
    return found.value.problems


def test_without_an_alerts_section_the_default_rules_run(tmp_path):
    settings = config(tmp_path, "").alerts
    names = [r.name for r in settings.rules if r.enabled]
    assert "dependency_down" in names and "availability_burn" in names and len(names) == 12
    # the anomaly rule ships as an example to enable (docs/alerts.md: it would page twice)
    (example,) = [r for r in settings.rules if not r.enabled]
    assert example.kind == "anomaly" and example.name == "turn_latency_anomaly"
    assert (settings.group_wait_s, settings.group_interval_s, settings.repeat_interval_s) == (
        30,
        300,
        14400,
    )


def test_a_file_rule_replaces_a_default_and_another_joins_them(tmp_path):
    settings = config(
        tmp_path,
        """
        [alerts]
        group_interval = "10m"
        [[alerts.rules]]
        name = "turn_latency_high"
        kind = "threshold"
        metric = "p95_e2e_latency"
        threshold = 2500
        enabled = false
        [[alerts.rules]]
        name = "long_calls"
        kind = "threshold"
        metric = "long_call_share"
        threshold = 20
        window = "1h"
        for = "10m"
        [[metrics]]
        name = "long_call_share"
        type = "proportion"
        level = "call"
        sql = "SELECT call_id, started_at AS ts, CASE WHEN duration_s > 600 THEN 1.0 ELSE 0.0 END AS value FROM calls"
        """,
    ).alerts
    rules = {r.name: r for r in settings.rules}
    assert rules["turn_latency_high"].params["threshold"] == 2500
    assert not rules["turn_latency_high"].enabled
    assert rules["long_calls"].for_s == 600 and rules["long_calls"].params["window"] == 3600
    assert rules["long_calls"].origin == "file"
    assert settings.group_interval_s == 600


def test_each_mistake_is_one_sentence_naming_the_setting(tmp_path):
    found = problems(
        tmp_path,
        """
        [alerts]
        group_wait = "soon"
        webhook_url = "https://hooks.slack.com/services/T/B/secret"
        handler = "not a function"
        [[alerts.rules]]
        name = "x"
        kind = "threshold"
        metric = "no_such_metric"
        threshold = "high"
        [[alerts.rules]]
        name = "y"
        kind = "threshold"
        metric = "error_rate"
        threshold = 2
        recovery = 3
        [[alerts.rules]]
        name = "z"
        kind = "teleport"
        [[alerts.rules]]
        name = "w"
        kind = "probe_down"
        keep_firing_for = 3
        colour = "red"
        """,
    )
    text = "\n".join(found)
    assert "alerts.group_wait in" in text and "must be a duration like '30s'" in text
    assert "alerts.webhook_url in" in text and "is a secret" in text
    assert "alerts.handler in" in text
    assert "alerts.rules[0].metric in" in text and "names no metric of the catalogue" in text
    assert "alerts.rules[0].threshold in" in text and "must be a number" in text
    assert "alerts.rules[1] (y)" in text and "recovery must not be above the threshold" in text
    assert "alerts.rules[2].kind in" in text and "must be one of threshold" in text
    assert "alerts.rules[3].colour in" in text and "is not a known setting" in text
    assert all(p.count(".") >= 1 and "\n" not in p for p in found)
    assert "services/T/B" not in text  # the value itself is never echoed


def test_a_rule_from_the_alerts_page_goes_through_the_same_check():
    from analysis.metrics import catalogue

    rule, found = rule_from_definition(
        {"name": "slow", "kind": "threshold", "metric": "p95_e2e_latency", "threshold": 2000},
        catalogue(),
    )
    assert rule is not None and rule.origin == "app" and found == []
    rule, found = rule_from_definition({"name": "Bad Name", "kind": "threshold"}, catalogue())
    assert rule is None
    assert any("rule Bad Name.name in the Alerts page must be lower_snake_case" in p for p in found)
    assert any("rule Bad Name.metric in the Alerts page is required" in p for p in found)
