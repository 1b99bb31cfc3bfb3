"""Importing the SDK stays light: no Streamlit, DuckDB, pandas or pyarrow (checked in a fresh
interpreter), and configuring it with a spool sink does not pull them in either."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["streamlit", "duckdb", "pandas", "pyarrow", "numpy", "supabase", "plotly"]


def modules_after(code: str) -> list[str]:
    probe = (
        code + f"\nimport sys, json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd="."
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_the_sdk_imports_no_heavy_package():
    assert modules_after("import collectors.instrumentation") == []


def test_configuring_a_fastapi_app_imports_no_heavy_package(tmp_path):
    code = (
        "from fastapi import FastAPI\n"
        "from collectors.instrumentation.integration import configure_monitoring\n"
        f"configure_monitoring(FastAPI(), {{'sink': {{'type': 'spool', 'spool_dir': {str(tmp_path)!r}}}}})\n"
        "from collectors.instrumentation.performance import performance_monitor\n"
        "performance_monitor.track_request('/x', 'GET', 0.1, 200)\n"
        "from collectors.instrumentation import flush_monitoring; flush_monitoring()\n"
    )
    assert modules_after(code) == []
