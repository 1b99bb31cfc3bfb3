"""The app reads; it never loads the write path. Importing its data layer and everything its
pages import, then reading the configuration's metrics, leaves the publisher, the run engine,
the validator and the warehouse unimported (checked in a fresh interpreter)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

WRITE_PATH = [
    "collectors.publish",
    "collectors.engine",
    "collectors.validate",
    "collectors.warehouse",
]


def imports_of(path: Path) -> list[str]:
    """Every import statement in a file, at any depth, as source lines."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import | ast.ImportFrom) and getattr(node, "level", 0) == 0:
            found.append(ast.unparse(node))
    return found


def write_path_modules_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    probe = f"{code}\nimport sys, json\nprint(json.dumps([m for m in {WRITE_PATH!r} if m in sys.modules]))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    return list(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_app_and_its_pages_import_no_part_of_the_write_path(tmp_path: Path) -> None:
    files = sorted((REPO / "app").rglob("*.py"))
    statements = dict.fromkeys(line for path in files for line in imports_of(path))
    config = tmp_path / "workbench.toml"
    config.write_text(
        '[[metrics]]\nname = "long_calls"\ntype = "proportion"\nlevel = "call"\n'
        'sql = "SELECT call_id, started_at AS ts, 1.0 AS value FROM calls"\n'
    )
    code = "\n".join(
        [
            *statements,
            "from app import data",
            "assert [m['name'] for m in data.custom_metrics()] == ['long_calls']",
        ]
    )
    env = {**os.environ, "WORKBENCH_CONFIG": str(config), "WORKBENCH_DATA_DIR": str(tmp_path)}
    assert write_path_modules_after(code, env) == []


def test_the_probe_sees_the_write_path_when_it_is_imported() -> None:
    assert write_path_modules_after("import collectors.publish, collectors.warehouse") == WRITE_PATH
