"""The Alerts page as a person on call uses it: it lists what fires, a silence created on it
mutes the next notification, a rule can be tested before it is saved; the Overview says what
fires at the top."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.alerts import kinds
from collectors.alerts.delivery import LogReceiver
from collectors.alerts.engine import utc_now
from collectors.alerts.runner import Alerting
from collectors.alerts.settings import AlertSettings, default_settings
from tests.alerting import Clock, Script, scripted_rule
from tests.conftest import REPO

PAGE = REPO / "app" / "views" / "alerts.py"


@pytest.fixture
def firing(demo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "data"
    shutil.copytree(demo_dir, root)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    script = Script([{"target": "supabase"}])
    monkeypatch.setitem(kinds.KINDS, "scripted", script.kind())
    clock = Clock(utc_now())  # the page's silences start at the wall clock's now
    rules = (*default_settings().rules, scripted_rule("supabase_errors", severity="critical"))
    alerting = Alerting(root, AlertSettings(rules=rules), [LogReceiver()], clock=clock)
    alerting.evaluate_once()  # fires; its notification waits for group_wait (30 s)
    return alerting, clock


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label.startswith(label))


def test_the_page_lists_what_fires_and_a_silence_made_on_it_mutes_the_next_notification(firing):
    alerting, clock = firing
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    table = at.dataframe[0].value
    assert "supabase_errors" in set(table["alert"])
    assert "target=supabase" in set(table["labels"])
    at.text_area(key="silence_matchers").input('alertname="supabase_errors"\ntarget="supabase"')
    at.text_input(key="silence_author").input("ana")
    at.text_input(key="silence_comment").input("Supabase maintenance, planned")
    button(at, "Create silence").click()
    at.run()
    assert any("Silence 1 created" in s.value for s in at.success), [e.value for e in at.error]
    clock.advance(seconds=31)
    alerting.evaluate_once()
    alerting.sender.run_once()
    sent = alerting.store.notifications()
    assert set(sent["status"]) == {"skipped"}  # muted: nothing was frozen or delivered
    at.run()
    assert "silence 1 by ana" in set(at.dataframe[0].value["muted"])


def test_a_rule_is_tested_on_the_page_before_it_is_saved(firing):
    alerting, _ = firing
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    at.selectbox(key="rule_choice").select("dependency_down")
    at.run()
    button(at, "Test: would it fire now").click()
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any("would not fire now" in i.value for i in at.info)
    text = at.text_area(key="rule_text_dependency_down").value.replace("3m", "2m")
    text = text.replace("keep_firing_for = 180", "keep_firing_for = 120")
    at.text_area(key="rule_text_dependency_down").input(text)
    at.text_input(key="rule_author").input("ana")
    at.run()
    button(at, "Save").click()
    at.run()
    assert any("Saved" in s.value for s in at.success), [e.value for e in at.error]
    assert alerting.store.page_rules()["dependency_down"][0]["keep_firing_for"] == 120
    alerting.evaluate_once()
    rules = {r.name: r for r in alerting.engine.rules().rules}
    assert (
        rules["dependency_down"].keep_firing_for_s == 120
        and rules["dependency_down"].origin == "app"
    )


def test_the_overview_says_what_fires_at_the_top(firing):
    at = AppTest.from_file(str(REPO / "app" / "views" / "overview.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert any(
        "1 alert\\(s\\) firing" in e.value and "supabase\\_errors" in e.value for e in at.error
    )


def test_alert_text_from_data_shows_as_plain_text(demo_dir, tmp_path, monkeypatch):
    root = tmp_path / "data"
    shutil.copytree(demo_dir, root)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    hostile = "[pay here](http://evil.example) **now** <b>x</b> :red[alarm]"
    script = Script([{"target": hostile}])
    monkeypatch.setitem(kinds.KINDS, "scripted", script.kind())
    alerting = Alerting(
        root, AlertSettings(rules=(scripted_rule(),)), [LogReceiver()], clock=Clock(utc_now())
    )
    alerting.evaluate_once()
    at = AppTest.from_file(str(PAGE), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [m.value for m in at.markdown] + [e.label for e in at.expander]
    assert any("evil" in text for text in shown)
    for text in shown:
        assert "](http" not in text and "**now**" not in text and ":red[" not in text, text
