"""The `workbench` command: every subcommand has help and is documented in the README."""

from __future__ import annotations

import subprocess
import sys

import pytest

from collectors.cli import build_parser
from tests.conftest import REPO


def subcommands() -> list[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return sorted(action.choices)


@pytest.mark.parametrize("name", subcommands())
def test_every_subcommand_has_help(name):
    result = subprocess.run(
        [sys.executable, "-m", "collectors.cli", name, "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0
    assert f"workbench {name}" in result.stdout
    description = result.stdout.split("\n\n")[1]
    assert len(description.strip()) > 20, "a sentence saying what the subcommand does"


@pytest.mark.parametrize("name", subcommands())
def test_every_subcommand_is_in_the_readme(name):
    readme = (REPO / "README.md").read_text()
    assert f"`{name}" in readme or f"workbench {name}" in readme


def test_collect_names_the_configured_sources_when_the_name_is_wrong(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "collectors.cli", "--data-dir", str(tmp_path), "collect", "nope"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("No source named 'nope'; configured")
