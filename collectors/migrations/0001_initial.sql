-- 0001: canonical tables and bookkeeping. Timestamps are naive TIMESTAMP holding UTC.
-- Canonical tables carry no PRIMARY KEY index: the run engine is the single writer and upserts
-- by each table's natural key (collectors/schema.py), and an ART index would make bulk loads
-- about 2.7 times slower (measured). Natural-key uniqueness is tested, not assumed.

CREATE TABLE requests (
    request_id VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    route VARCHAR NOT NULL,
    method VARCHAR NOT NULL,
    status_code INTEGER NOT NULL,
    duration_ms DOUBLE NOT NULL,
    release VARCHAR,
    service VARCHAR,
    user_id VARCHAR,
    ip VARCHAR,
    call_id VARCHAR
);

CREATE TABLE errors (
    error_id VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    error_type VARCHAR NOT NULL,
    message VARCHAR,
    stack_trace VARCHAR,
    fingerprint VARCHAR,
    severity VARCHAR,
    route VARCHAR,
    method VARCHAR,
    release VARCHAR,
    request_id VARCHAR,
    call_id VARCHAR,
    user_id VARCHAR,
    sample_rate DOUBLE
);

CREATE TABLE db_queries (
    query_id VARCHAR NOT NULL,
    observed_at TIMESTAMP NOT NULL,
    statement VARCHAR NOT NULL,
    calls BIGINT,
    total_ms DOUBLE,
    mean_ms DOUBLE,
    rows BIGINT,
    database VARCHAR,
    release VARCHAR
);

CREATE TABLE voice_turns (
    turn_id VARCHAR NOT NULL,
    call_id VARCHAR NOT NULL,
    turn_index INTEGER,
    started_at TIMESTAMP NOT NULL,
    eou_delay_ms DOUBLE,
    stt_ms DOUBLE,
    llm_ttft_ms DOUBLE,
    tts_ttfb_ms DOUBLE,
    e2e_ms DOUBLE,
    interrupted BOOLEAN,
    llm_prompt_tokens INTEGER,
    llm_completion_tokens INTEGER,
    tts_characters INTEGER,
    release VARCHAR,
    variant VARCHAR
);

CREATE TABLE calls (
    call_id VARCHAR NOT NULL,
    caller_id VARCHAR,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    duration_s DOUBLE,
    outcome VARCHAR,
    turns INTEGER,
    interruptions INTEGER,
    release VARCHAR,
    experiment_key VARCHAR,
    variant VARCHAR,
    region VARCHAR,
    network VARCHAR
);

CREATE TABLE voice_quality (
    sample_id VARCHAR NOT NULL,
    call_id VARCHAR,
    measured_at TIMESTAMP NOT NULL,
    latency_ms DOUBLE,
    jitter_ms DOUBLE,
    packet_loss_pct DOUBLE,
    audio_level DOUBLE,
    noise_level DOUBLE,
    mos_reported DOUBLE,
    codec VARCHAR,
    region VARCHAR,
    network VARCHAR,
    release VARCHAR
);

CREATE TABLE feedback (
    feedback_id VARCHAR NOT NULL,
    submitted_at TIMESTAMP NOT NULL,
    rating INTEGER,
    category VARCHAR,
    comment VARCHAR,
    user_id VARCHAR,
    session_id VARCHAR,
    call_id VARCHAR,
    release VARCHAR
);

CREATE TABLE feature_usage (
    usage_id VARCHAR NOT NULL,
    used_at TIMESTAMP NOT NULL,
    feature_name VARCHAR NOT NULL,
    user_id VARCHAR,
    session_id VARCHAR,
    call_id VARCHAR,
    duration_s DOUBLE
);

CREATE TABLE auth_events (
    event_id VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    event_type VARCHAR NOT NULL,
    success BOOLEAN,
    user_id VARCHAR,
    ip VARCHAR,
    user_agent VARCHAR,
    path VARCHAR
);

CREATE TABLE security_events (
    event_id VARCHAR NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    event_type VARCHAR NOT NULL,
    severity VARCHAR,
    user_id VARCHAR,
    ip VARCHAR,
    path VARCHAR,
    details VARCHAR
);

CREATE TABLE resource_samples (
    host VARCHAR NOT NULL,
    sampled_at TIMESTAMP NOT NULL,
    cpu_pct DOUBLE,
    memory_pct DOUBLE,
    disk_pct DOUBLE,
    net_in_bytes BIGINT,
    net_out_bytes BIGINT,
    db_connections INTEGER,
    cache_hit_pct DOUBLE,
    db_size_bytes BIGINT
);

CREATE TABLE probe_results (
    target VARCHAR NOT NULL,
    checked_at TIMESTAMP NOT NULL,
    kind VARCHAR,
    status VARCHAR NOT NULL,
    latency_ms DOUBLE,
    status_code INTEGER,
    error VARCHAR
);

CREATE TABLE deployments (
    deployment_id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    service VARCHAR,
    environment VARCHAR,
    release VARCHAR,
    status VARCHAR,
    is_rollback BOOLEAN,
    commit_sha VARCHAR,
    message VARCHAR
);

CREATE TABLE experiment_exposures (
    experiment_key VARCHAR NOT NULL,
    unit_id VARCHAR NOT NULL,
    unit_type VARCHAR,
    variant VARCHAR NOT NULL,
    exposed_at TIMESTAMP NOT NULL
);

CREATE TABLE app_starts (
    host VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    startup_ms DOUBLE,
    init_ms DOUBLE,
    release VARCHAR
);

CREATE SEQUENCE collector_run_ids;
CREATE TABLE collector_runs (
    run_id BIGINT PRIMARY KEY,
    source VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP,
    status VARCHAR NOT NULL,          -- running|ok|partial|failed
    rows_read BIGINT NOT NULL DEFAULT 0,
    rows_inserted BIGINT NOT NULL DEFAULT 0,
    rows_updated BIGINT NOT NULL DEFAULT 0,
    rows_rejected BIGINT NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 1,
    error VARCHAR
);

CREATE TABLE watermarks (
    source VARCHAR NOT NULL,
    stream VARCHAR NOT NULL,
    value VARCHAR NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (source, stream)
);

CREATE SEQUENCE reject_ids;
CREATE TABLE rejects (
    reject_id BIGINT PRIMARY KEY,
    run_id BIGINT,
    source VARCHAR NOT NULL,
    table_name VARCHAR NOT NULL,
    row_json VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    rejected_at TIMESTAMP NOT NULL
);

CREATE TABLE alerts (
    alert_id VARCHAR PRIMARY KEY,
    rule VARCHAR NOT NULL,
    severity VARCHAR NOT NULL,
    fired_at TIMESTAMP NOT NULL,
    resolved_at TIMESTAMP,
    summary VARCHAR,
    labels VARCHAR
);

-- Day partitions changed since the last publish: what the publisher rewrites.
CREATE TABLE dirty_partitions (
    table_name VARCHAR NOT NULL,
    day DATE NOT NULL,
    PRIMARY KEY (table_name, day)
);
