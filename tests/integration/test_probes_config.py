"""collectors.config: TOML + env + secrets, one sentence per problem, and build_sources."""

from __future__ import annotations

import pytest

from collectors.config import ConfigError, build_sources, load_config


def write(tmp_path, text: str):
    path = tmp_path / "workbench.toml"
    path.write_text(text)
    return path


def test_no_config_at_all_runs_the_demo_and_the_spool_its_live_agents_write_to(tmp_path):
    cfg = load_config(env={"WORKBENCH_CONFIG": ""})
    sources = build_sources(cfg, tmp_path)
    assert set(sources) == {"demo", "spool"}
    assert sources["demo"][1] == {"kind": "interval", "seconds": 60}
    assert sources["spool"][1] == {"kind": "interval", "seconds": 10}
    # the demo's agents write into the data folder's spool, which the spool job reads
    assert sources["demo"][0].spool_dir == sources["spool"][0].directory == tmp_path / "spool"


def test_every_problem_is_reported_with_setting_and_origin(tmp_path):
    path = write(
        tmp_path,
        """
[supabase]
url = "supabase.co"
key = "sb_secret_abc"
page_size = 0

[[supabase.mappings]]
source = "call_logs"
target = "calls"
columns = { call_id = "session_id", nonsense = "x" }

[[probes.http]]
name = "api"
url = "https://api.example.com/health"
interval = 0
schedule = "every minute"
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    problems = info.value.problems
    text = "\n".join(problems)
    assert "supabase.url in" in text and str(path) in text
    assert "supabase.key" in text and "secret" in text
    assert "sb_secret_abc" not in text  # secrets are never echoed
    assert "supabase.page_size" in text
    assert "supabase.mappings[0].columns.nonsense" in text
    assert "probes.http[0].schedule" in text
    assert "SUPABASE_API_KEY is not set" in text
    assert all("\n" not in p for p in problems)


def test_env_wins_over_file_and_secrets_come_from_streamlit_secrets(tmp_path):
    path = write(
        tmp_path,
        """
[supabase]
url = "https://from-file.supabase.co"
interval = 120

[railway]
project_id = "file-project"
""",
    )
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(
        'SUPABASE_API_KEY = "key-from-secrets"\nRAILWAY_API_KEY = "rw-from-secrets"\n'
    )
    env = {"SUPABASE_URL": "https://from-env.supabase.co", "RAILWAY_PROJECT_ID": "env-project"}
    cfg = load_config(path, env=env)
    assert cfg.supabase.url == "https://from-env.supabase.co"
    assert cfg.origins["supabase.url"] == "env SUPABASE_URL"
    assert cfg.railway.project_id == "env-project"
    assert cfg.secret("SUPABASE_API_KEY") == "key-from-secrets"
    assert "key-from-secrets" not in repr(cfg) and "rw-from-secrets" not in repr(cfg)
    sources = build_sources(cfg)
    assert set(sources) == {"supabase", "probe:supabase", "railway"}
    assert sources["supabase"][1] == {"kind": "interval", "seconds": 120}
    assert "key-from-secrets" not in repr(sources["supabase"][0])
    env_cfg = load_config(path, env={**env, "SUPABASE_API_KEY": "env-key"})
    assert env_cfg.secret("SUPABASE_API_KEY") == "env-key"


def test_spec_shapes_cron_schedules_and_mappings(tmp_path):
    path = write(
        tmp_path,
        """
[supabase]
url = "https://x.supabase.co"
mode = "postgres"
tables = ["requests", "errors"]

[[supabase.mappings]]
source = "call_logs"
target = "calls"
columns = { call_id = "session_id" }
scale = { duration_s = 0.001 }

[[health.endpoints]]
name = "api"
url = "https://api.example.com/health"
method = "GET"
expected_status = 200
timeout = 5.0
check_interval = 60

[health.thresholds]
cpu_usage = 80
memory_usage = 85

[[infrastructure.dependencies]]
type = "custom"
name = "database-connection-pool"
check = "os:getcwd"
schedule = "*/5 * * * *"
""",
    )
    cfg = load_config(
        path, env={"SUPABASE_DB_URL": "postgresql://u:pw@db.ref.supabase.co:5432/postgres"}
    )
    sources = build_sources(cfg)
    assert set(sources) == {"supabase", "supabase-perf", "probes:http@60s", "probe:host",
                            "probe:database-connection-pool", "probe:supabase"}  # fmt: skip
    src = sources["supabase"][0]
    assert type(src).__name__ == "SupabasePgSource" and "pw" not in repr(src)
    assert [m.source_table for m in src.mappings] == ["requests", "errors", "call_logs"]
    assert src.mappings[-1].scale == {"duration_s": 0.001}
    assert sources["probe:database-connection-pool"][1] == {"kind": "cron", "expr": "*/5 * * * *"}
    assert sources["probe:host"][0].thresholds == {"cpu_pct": 80.0, "memory_pct": 85.0}


def test_transaction_pooler_and_missing_file(tmp_path):
    path = write(tmp_path, '[supabase]\nmode = "postgres"\n')
    with pytest.raises(ConfigError, match="6543"):
        load_config(
            path,
            env={"SUPABASE_DB_URL": "postgresql://u:p@aws-0.pooler.supabase.com:6543/postgres"},
        )
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(env={"WORKBENCH_CONFIG": str(tmp_path / "missing.toml")})


def test_a_spool_directory_adds_the_spool_source_and_turns_the_demo_off(tmp_path):
    from collectors.config import build_sources, load_config

    config_file = tmp_path / "workbench.toml"
    config_file.write_text(f'[spool]\ndirectory = "{tmp_path / "spool"}"\ninterval = 15\n')
    sources = build_sources(load_config(config_file, env={}))
    assert list(sources) == ["spool"]
    source, schedule = sources["spool"]
    assert source.directory == tmp_path / "spool"
    assert schedule == {"kind": "interval", "seconds": 15}


def test_the_spool_directory_can_come_from_the_environment(tmp_path):
    from collectors.config import build_sources, load_config

    env = {
        "WORKBENCH_SPOOL_DIR": str(tmp_path / "s"),
        "WORKBENCH_CONFIG": str(tmp_path / "none.toml"),
    }
    (tmp_path / "none.toml").write_text("")
    assert "spool" in build_sources(load_config(None, env=env))


def test_http_probes_on_one_schedule_run_as_one_source_each_with_its_own_state(tmp_path):
    from collectors.config import build_sources, load_config
    from collectors.engine import run_source
    from collectors.warehouse import open_warehouse
    from tests.integration.http_misbehaving import Misbehaving

    with Misbehaving() as server:
        config_file = tmp_path / "workbench.toml"
        config_file.write_text(
            "[[probes.http]]\n"
            f'name = "api"\nurl = "{server.url}/ok"\ninterval = 10\n'
            "[[probes.http]]\n"
            f'name = "broken"\nurl = "{server.url}/500"\ninterval = 10\nretries = 1\n'
            "[[probes.http]]\n"
            f'name = "slowpoke"\nurl = "{server.url}/ok"\ninterval = 60\n'
        )
        sources = build_sources(load_config(config_file, env={}))
        assert set(sources) == {"probes:http@10s", "probes:http@60s"}
        grouped, schedule = sources["probes:http@10s"]
        assert [c.target for c in grouped.checks] == ["api", "broken"]
        assert schedule == {"kind": "interval", "seconds": 10}
        con = open_warehouse(tmp_path / "w.duckdb")
        for _ in range(2):
            assert run_source(con, grouped).status == "ok"
    states = con.execute(
        "SELECT target, list(status ORDER BY checked_at) FROM probe_results GROUP BY target "
        "ORDER BY target"
    ).fetchall()
    assert states == [("api", ["up", "up"]), ("broken", ["pending", "down"])]
    assert con.execute("SELECT count(*) FROM collector_runs").fetchone()[0] == 2


def test_user_metrics_come_from_the_config_and_bad_ones_name_the_key(tmp_path):
    from collectors.config import ConfigError, load_config

    good = tmp_path / "good.toml"
    good.write_text(
        "[[metrics]]\n"
        'name = "long_calls"\ntype = "proportion"\nlevel = "call"\n'
        'sql = "SELECT call_id, started_at AS ts, CASE WHEN duration_s > 300 THEN 1.0 '
        'ELSE 0.0 END AS value FROM calls"\n'
    )
    assert [m["name"] for m in load_config(good, env={}).metrics] == ["long_calls"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[[metrics]]\nname = "x"\ntype = "median"\nlevel = "call"\nsql = "SELECT 1"\n')
    with pytest.raises(ConfigError) as caught:
        load_config(bad, env={})
    assert caught.value.problems == [
        f"metrics[0] in {bad}: metric 'x': key 'type' must be one of "
        "proportion, mean, ratio, quantile."
    ]
