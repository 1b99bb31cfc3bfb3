"""A metric definition that reaches outside the snapshot shows nothing of what it reached on the
Experiments page, even when it got past the configuration check (an older or faulty check): the
snapshot's DuckDB cannot read files."""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

import streamlit as st
from streamlit.testing.v1 import AppTest

from app import data
from tests.conftest import REPO

PASSWD = (
    "SELECT c.call_id, c.started_at AS ts, CAST(f.content AS DOUBLE) AS value "
    "FROM calls c, read_text('/etc/passwd') f"
)


def test_metric_sql_reading_a_file_shows_nothing_of_it(demo_dir, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    (root / "serving").symlink_to(demo_dir / "serving")
    shutil.copy(demo_dir / "control.sqlite", root / "control.sqlite")
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(root))
    st.cache_resource.clear()
    st.cache_data.clear()
    # replaces the built-in primary metric, so both the Result and the Plan tab run it
    metric = {"name": "resolved_rate", "type": "mean", "level": "call", "sql": PASSWD}
    monkeypatch.setattr(data, "load_config", lambda: SimpleNamespace(metrics=[metric]))
    at = AppTest.from_file(str(REPO / "app" / "views" / "experiments.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [m.value for m in (*at.info, *at.caption, *at.error, *at.warning, *at.markdown)]
    text = re.sub(r"\\(.)", r"\1", "\n".join(shown))  # Markdown escapes removed
    assert "root:" not in text and "/bin/" not in text
    assert "/etc/passwd" in text  # the metric ran and failed, saying on what
