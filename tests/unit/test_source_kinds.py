"""Kinds of source: a new source is one new file, schedules follow the rule the service runs,
and [sdk] is refused."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import collectors.sources
from collectors.config import ConfigError, build_sources, load_config
from collectors.control import ControlStore, ScheduleError
from collectors.jobs import jobs_from
from collectors.service import seed_schedules
from collectors.sources.registry import source_kinds
from tests.conftest import REPO

# A whole source, settings and registration included, as a user would add it: one file.
THERMOMETER = '''
"""The server room's thermometer: one reading per run into probe_results."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.config_secrets import Secrets
from collectors.config_validator import Validator
from collectors.schedules import SCHEDULE_KEYS, Schedule
from collectors.sources.base import Batch
from collectors.sources.registry import Built, SourceKind


class ThermometerSource:
    name = "thermometer"

    def __init__(self, url: str, token: str) -> None:
        self.url, self._token = url, token

    def fetch(self, watermarks: Mapping[str, str]) -> Iterator[Batch]:
        row = {"target": self.url, "checked_at": datetime.now(UTC), "status": "up"}
        yield Batch("probe_results", [row], stream="readings", watermark="read")


@dataclass(frozen=True)
class ThermometerSettings:
    url: str
    schedule: Schedule


def thermometer_settings(
    data: Mapping[str, Any], v: Validator, secrets: Secrets
) -> ThermometerSettings | None:
    section = v.table(data, "thermometer")
    if section is None:
        return None
    v.known(section, "thermometer", {"url", *SCHEDULE_KEYS})
    if not secrets.value("THERMOMETER_TOKEN"):
        v.problem("THERMOMETER_TOKEN is not set: put it in the environment.")
    url = v.url(section, "thermometer", "url")
    schedule = v.schedule(section, "thermometer", 30)
    if url is None:
        if "url" not in section:
            v.fail("thermometer.url", "is required")
        return None
    return ThermometerSettings(url, schedule)


def thermometer_sources(settings: ThermometerSettings, secrets: Secrets, data_dir: Path) -> Built:
    source = ThermometerSource(settings.url, secrets.value("THERMOMETER_TOKEN") or "")
    return {source.name: (source, settings.schedule.as_dict())}


THERMOMETER = SourceKind(
    name="thermometer",
    sections=("thermometer",),
    parse=thermometer_settings,
    build=thermometer_sources,
    env={"THERMOMETER_URL": "thermometer.url"},
    secrets=("THERMOMETER_TOKEN",),
)
'''


@pytest.fixture
def new_source_file(tmp_path, monkeypatch):
    """Drop THERMOMETER into the sources package (through an extra folder on its path, so the
    repository is left alone); undone after the test."""
    folder = tmp_path / "more_sources"
    folder.mkdir()
    (folder / "thermometer.py").write_text(THERMOMETER)
    monkeypatch.setattr(collectors.sources, "__path__", [*collectors.sources.__path__, str(folder)])
    importlib.invalidate_caches()
    yield
    sys.modules.pop("collectors.sources.thermometer", None)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workbench.toml"
    path.write_text(text)
    return path


def test_a_new_source_is_one_new_file(tmp_path, new_source_file):
    from collectors.engine import run_source
    from collectors.warehouse import open_warehouse

    kind = next(k for k in source_kinds() if k.name == "thermometer")
    env = {"THERMOMETER_TOKEN": "t0ken"}

    # validated: each problem one sentence naming the key and where it came from
    bad = write(tmp_path, '[thermometer]\nurl = "room-7"\ncolour = "red"\nschedule = "often"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(bad, env={})
    problems = caught.value.problems
    assert f"thermometer.url in {bad} must be a URL starting with http:// or https://" in (
        "\n".join(problems)
    )
    assert any(
        p.startswith(f"thermometer.colour in {bad} is not a known setting") for p in problems
    )
    assert any(p.startswith(f"thermometer.schedule in {bad} must be a cron") for p in problems)
    assert "THERMOMETER_TOKEN is not set: put it in the environment." in problems
    assert len(problems) == 4

    # configured: from the file, its variable winning over the file, its secret from the env
    good = write(tmp_path, '[thermometer]\nurl = "http://room-7.local/t"\ninterval = 20\n')
    cfg = load_config(good, env={**env, "THERMOMETER_URL": "http://room-8.local/t"})
    assert cfg.settings_of(kind).url == "http://room-8.local/t"
    assert cfg.origins["thermometer.url"] == "env THERMOMETER_URL"
    assert cfg.secret("THERMOMETER_TOKEN") == "t0ken" and "t0ken" not in repr(cfg)
    assert not cfg.demo  # a real source is configured

    # built, scheduled and run like any other source
    sources = build_sources(cfg, tmp_path)
    assert list(sources) == ["thermometer"]
    source, schedule = sources["thermometer"]
    assert schedule == {"kind": "interval", "seconds": 20}
    con = open_warehouse(tmp_path / "w.duckdb")
    assert run_source(con, source).status == "ok"
    assert con.execute("SELECT target FROM probe_results").fetchall() == [
        ("http://room-8.local/t",)
    ]


def test_without_the_file_its_section_configures_nothing(tmp_path):
    cfg = load_config(write(tmp_path, '[thermometer]\nurl = "http://room-7.local/t"\n'), env={})
    assert set(build_sources(cfg, tmp_path)) == {"demo", "spool"}


def test_every_kind_is_documented():
    """Each kind's sections and environment variables are in docs/sources.md."""
    docs = (REPO / "docs" / "sources.md").read_text()
    for kind in source_kinds():
        for section in kind.sections:
            assert f"[{section}]" in docs, f"[{section}] ({kind.name}) is not in docs/sources.md"
        for variable in kind.env:
            assert f"`{variable}`" in docs, f"{variable} ({kind.name}) is not in docs/sources.md"


# ---- schedules -------------------------------------------------------------------------------

# The old pattern refused names and accepted values the service cannot run; APScheduler decides.
RUNS = ["*/5 * * * *", "0 9 * * mon-fri", "30 2 1 jan,jul *"]
DOES_NOT_RUN = ["every minute", "99 * * * *", "*/0 * * * *", "* * * * * *", ""]


@pytest.mark.parametrize("expr", RUNS)
def test_a_cron_expression_the_service_runs_is_accepted_by_the_file_and_the_store(tmp_path, expr):
    config = write(
        tmp_path, f'[[probes.custom]]\nname = "pool"\ncheck = "os:getcwd"\nschedule = "{expr}"\n'
    )
    sources = build_sources(load_config(config, env={}), tmp_path)
    assert sources["probe:pool"][1] == {"kind": "cron", "expr": expr}
    ControlStore(tmp_path / "c.sqlite").set_schedule("probe:pool", "cron", cron=expr)


@pytest.mark.parametrize("expr", DOES_NOT_RUN)
def test_a_cron_expression_it_cannot_run_is_one_sentence_in_both(tmp_path, expr):
    config = write(
        tmp_path, f'[[probes.custom]]\nname = "pool"\ncheck = "os:getcwd"\nschedule = "{expr}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    [problem] = caught.value.problems
    assert problem.startswith(
        f"probes.custom[0].schedule in {config} must be a cron expression like '*/5 * * * *' "
        f"(got {expr!r}: "
    )
    assert problem.endswith(").") and "\n" not in problem
    with pytest.raises(ScheduleError) as refused:
        ControlStore(tmp_path / "c.sqlite").set_schedule("probe:pool", "cron", cron=expr)
    assert str(refused.value).startswith(f"The cron expression {expr!r} is not valid: ")
    # the same reason in both sentences
    assert str(refused.value).removesuffix(".").rsplit(": ", 1)[-1] in problem


def test_an_interval_the_control_store_refuses_is_refused_at_load(tmp_path):
    config = write(tmp_path, '[[probes.http]]\nurl = "http://127.0.0.1:9/"\ninterval = 2\n')
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    assert caught.value.problems == [
        f"probes.http[0].interval in {config} must be at least 5 (got 2)."
    ]


def test_a_run_timeout_reaches_the_service_schedule(tmp_path):
    config = write(
        tmp_path,
        '[[probes.custom]]\nname = "pool"\ncheck = "os:getcwd"\ninterval = 30\nrun_timeout = 90\n'
        '[[probes.http]]\nurl = "http://127.0.0.1:9/a"\ninterval = 30\n'
        '[[probes.http]]\nurl = "http://127.0.0.1:9/b"\ninterval = 30\nrun_timeout = 45\n',
    )
    jobs = jobs_from(load_config(config, env={}), tmp_path)
    assert jobs["probe:pool"].schedule == {"kind": "interval", "seconds": 30, "timeout_s": 90}
    # probes sharing a run get the most patient timeout among them
    assert jobs["probes:http@30s"].schedule["timeout_s"] == 45
    control = ControlStore(tmp_path / "c.sqlite")
    seed_schedules(control, jobs)
    assert control.schedules()["probe:pool"].timeout_s == 90
    bad = write(tmp_path, '[[probes.custom]]\nname = "p"\ncheck = "os:getcwd"\nrun_timeout = 0\n')
    with pytest.raises(ConfigError, match=r"probes.custom\[0\].run_timeout in .* at least 1"):
        load_config(bad, env={})


# ---- [sdk] ---------------------------------------------------------------------------------


def test_an_sdk_section_is_refused_with_one_sentence_saying_where_the_sdk_is_configured(
    tmp_path,
):
    config = write(tmp_path, "[sdk]\nerror_sample_rate = 0.1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, env={})
    [problem] = caught.value.problems
    assert problem.startswith(f"[sdk] in {config} is not read by the workbench: ")
    assert "configure_monitoring" in problem and "remove the section" in problem


def test_the_sdk_environment_variables_are_the_agent_s_not_the_workbench_s(tmp_path):
    # They configure the SDK inside the agent (collectors/instrumentation/config.py); a
    # workbench sharing the agent's environment neither reads nor rejects them.
    env = {"ERROR_SAMPLE_RATE": "lots", "SLOW_REQUEST_THRESHOLD": "-1"}
    cfg = load_config(write(tmp_path, ""), env=env)
    assert set(build_sources(cfg, tmp_path)) == {"demo", "spool"}
