-- Tables the monitoring SDK (collectors.instrumentation) writes through supabase-py.
-- Columns match the warehouse tables in collectors/schema.py (TIMESTAMP -> timestamptz, since
-- the SDK sends ISO 8601 with +00:00). Each table adds a bigint identity `id` and `created_at`
-- for keyset paging by the collectors ((created_at, id) > watermark), and a unique natural key
-- so the SDK's upserts (Prefer: resolution=ignore-duplicates) make replays harmless.
-- Row-level security is on with a policy for service_role only: the anon and authenticated
-- roles can neither read nor write. Use the service-role key as SUPABASE_API_KEY.

-- Supabase has these roles; a plain PostgreSQL (tests, self-hosting) gets them created here.
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin bypassrls;
  end if;
end
$$;

grant usage on schema public to service_role;

-- HTTP requests to the agent, per route template
create table if not exists public.requests (
  id bigint generated always as identity primary key,
  request_id text not null,
  started_at timestamptz not null,
  route text not null,
  method text not null,
  status_code integer not null,
  duration_ms double precision not null,
  release text,
  service text,
  user_id text,
  ip text,
  call_id text,
  created_at timestamptz not null default now(),
  constraint requests_natural_key unique (request_id)
);
create index if not exists requests_keyset on public.requests (created_at, id);
create index if not exists requests_started_at on public.requests (started_at);
alter table public.requests enable row level security;
revoke all on public.requests from anon, authenticated;
grant select, insert, update, delete on public.requests to service_role;
drop policy if exists requests_service_role on public.requests;
create policy requests_service_role on public.requests as permissive for all to service_role using (true) with check (true);

-- Captured exceptions and error events
create table if not exists public.errors (
  id bigint generated always as identity primary key,
  error_id text not null,
  occurred_at timestamptz not null,
  error_type text not null,
  message text,
  stack_trace text,
  fingerprint text,
  severity text,
  route text,
  method text,
  release text,
  request_id text,
  call_id text,
  user_id text,
  sample_rate double precision,
  created_at timestamptz not null default now(),
  constraint errors_natural_key unique (error_id)
);
create index if not exists errors_keyset on public.errors (created_at, id);
create index if not exists errors_occurred_at on public.errors (occurred_at);
alter table public.errors enable row level security;
revoke all on public.errors from anon, authenticated;
grant select, insert, update, delete on public.errors to service_role;
drop policy if exists errors_service_role on public.errors;
create policy errors_service_role on public.errors as permissive for all to service_role using (true) with check (true);

-- Database statement timings (single queries or pg_stat_statements deltas)
create table if not exists public.db_queries (
  id bigint generated always as identity primary key,
  query_id text not null,
  observed_at timestamptz not null,
  statement text not null,
  calls bigint,
  total_ms double precision,
  mean_ms double precision,
  rows bigint,
  database text,
  release text,
  created_at timestamptz not null default now(),
  constraint db_queries_natural_key unique (query_id)
);
create index if not exists db_queries_keyset on public.db_queries (created_at, id);
create index if not exists db_queries_observed_at on public.db_queries (observed_at);
alter table public.db_queries enable row level security;
revoke all on public.db_queries from anon, authenticated;
grant select, insert, update, delete on public.db_queries to service_role;
drop policy if exists db_queries_service_role on public.db_queries;
create policy db_queries_service_role on public.db_queries as permissive for all to service_role using (true) with check (true);

-- Per-turn voice pipeline latency parts (they overlap: never sum them)
create table if not exists public.voice_turns (
  id bigint generated always as identity primary key,
  turn_id text not null,
  call_id text not null,
  turn_index integer,
  started_at timestamptz not null,
  eou_delay_ms double precision,
  stt_ms double precision,
  llm_ttft_ms double precision,
  tts_ttfb_ms double precision,
  e2e_ms double precision,
  interrupted boolean,
  llm_prompt_tokens integer,
  llm_completion_tokens integer,
  tts_characters integer,
  release text,
  variant text,
  created_at timestamptz not null default now(),
  constraint voice_turns_natural_key unique (turn_id)
);
create index if not exists voice_turns_keyset on public.voice_turns (created_at, id);
create index if not exists voice_turns_started_at on public.voice_turns (started_at);
alter table public.voice_turns enable row level security;
revoke all on public.voice_turns from anon, authenticated;
grant select, insert, update, delete on public.voice_turns to service_role;
drop policy if exists voice_turns_service_role on public.voice_turns;
create policy voice_turns_service_role on public.voice_turns as permissive for all to service_role using (true) with check (true);

-- Voice sessions
create table if not exists public.calls (
  id bigint generated always as identity primary key,
  call_id text not null,
  caller_id text,
  started_at timestamptz not null,
  ended_at timestamptz,
  duration_s double precision,
  outcome text,
  turns integer,
  interruptions integer,
  release text,
  experiment_key text,
  variant text,
  region text,
  network text,
  created_at timestamptz not null default now(),
  constraint calls_natural_key unique (call_id)
);
create index if not exists calls_keyset on public.calls (created_at, id);
create index if not exists calls_started_at on public.calls (started_at);
alter table public.calls enable row level security;
revoke all on public.calls from anon, authenticated;
grant select, insert, update, delete on public.calls to service_role;
drop policy if exists calls_service_role on public.calls;
create policy calls_service_role on public.calls as permissive for all to service_role using (true) with check (true);

-- Network and audio quality per call
create table if not exists public.voice_quality (
  id bigint generated always as identity primary key,
  sample_id text not null,
  call_id text,
  measured_at timestamptz not null,
  latency_ms double precision,
  jitter_ms double precision,
  packet_loss_pct double precision,
  audio_level double precision,
  noise_level double precision,
  mos_reported double precision,
  codec text,
  region text,
  network text,
  release text,
  created_at timestamptz not null default now(),
  constraint voice_quality_natural_key unique (sample_id)
);
create index if not exists voice_quality_keyset on public.voice_quality (created_at, id);
create index if not exists voice_quality_measured_at on public.voice_quality (measured_at);
alter table public.voice_quality enable row level security;
revoke all on public.voice_quality from anon, authenticated;
grant select, insert, update, delete on public.voice_quality to service_role;
drop policy if exists voice_quality_service_role on public.voice_quality;
create policy voice_quality_service_role on public.voice_quality as permissive for all to service_role using (true) with check (true);

-- User ratings and comments
create table if not exists public.feedback (
  id bigint generated always as identity primary key,
  feedback_id text not null,
  submitted_at timestamptz not null,
  rating integer,
  category text,
  comment text,
  user_id text,
  session_id text,
  call_id text,
  release text,
  created_at timestamptz not null default now(),
  constraint feedback_natural_key unique (feedback_id)
);
create index if not exists feedback_keyset on public.feedback (created_at, id);
create index if not exists feedback_submitted_at on public.feedback (submitted_at);
alter table public.feedback enable row level security;
revoke all on public.feedback from anon, authenticated;
grant select, insert, update, delete on public.feedback to service_role;
drop policy if exists feedback_service_role on public.feedback;
create policy feedback_service_role on public.feedback as permissive for all to service_role using (true) with check (true);

-- Feature usage events
create table if not exists public.feature_usage (
  id bigint generated always as identity primary key,
  usage_id text not null,
  used_at timestamptz not null,
  feature_name text not null,
  user_id text,
  session_id text,
  call_id text,
  duration_s double precision,
  created_at timestamptz not null default now(),
  constraint feature_usage_natural_key unique (usage_id)
);
create index if not exists feature_usage_keyset on public.feature_usage (created_at, id);
create index if not exists feature_usage_used_at on public.feature_usage (used_at);
alter table public.feature_usage enable row level security;
revoke all on public.feature_usage from anon, authenticated;
grant select, insert, update, delete on public.feature_usage to service_role;
drop policy if exists feature_usage_service_role on public.feature_usage;
create policy feature_usage_service_role on public.feature_usage as permissive for all to service_role using (true) with check (true);

-- Authentication attempts
create table if not exists public.auth_events (
  id bigint generated always as identity primary key,
  event_id text not null,
  occurred_at timestamptz not null,
  event_type text not null,
  success boolean,
  user_id text,
  ip text,
  user_agent text,
  path text,
  created_at timestamptz not null default now(),
  constraint auth_events_natural_key unique (event_id)
);
create index if not exists auth_events_keyset on public.auth_events (created_at, id);
create index if not exists auth_events_occurred_at on public.auth_events (occurred_at);
alter table public.auth_events enable row level security;
revoke all on public.auth_events from anon, authenticated;
grant select, insert, update, delete on public.auth_events to service_role;
drop policy if exists auth_events_service_role on public.auth_events;
create policy auth_events_service_role on public.auth_events as permissive for all to service_role using (true) with check (true);

-- Security events reported by the SDK (rate limits, blocked IPs, ...)
create table if not exists public.security_events (
  id bigint generated always as identity primary key,
  event_id text not null,
  occurred_at timestamptz not null,
  event_type text not null,
  severity text,
  user_id text,
  ip text,
  path text,
  details text,
  created_at timestamptz not null default now(),
  constraint security_events_natural_key unique (event_id)
);
create index if not exists security_events_keyset on public.security_events (created_at, id);
create index if not exists security_events_occurred_at on public.security_events (occurred_at);
alter table public.security_events enable row level security;
revoke all on public.security_events from anon, authenticated;
grant select, insert, update, delete on public.security_events to service_role;
drop policy if exists security_events_service_role on public.security_events;
create policy security_events_service_role on public.security_events as permissive for all to service_role using (true) with check (true);

-- Host and database resource samples
create table if not exists public.resource_samples (
  id bigint generated always as identity primary key,
  host text not null,
  sampled_at timestamptz not null,
  cpu_pct double precision,
  memory_pct double precision,
  disk_pct double precision,
  net_in_bytes bigint,
  net_out_bytes bigint,
  db_connections integer,
  cache_hit_pct double precision,
  db_size_bytes bigint,
  created_at timestamptz not null default now(),
  constraint resource_samples_natural_key unique (host, sampled_at)
);
create index if not exists resource_samples_keyset on public.resource_samples (created_at, id);
create index if not exists resource_samples_sampled_at on public.resource_samples (sampled_at);
alter table public.resource_samples enable row level security;
revoke all on public.resource_samples from anon, authenticated;
grant select, insert, update, delete on public.resource_samples to service_role;
drop policy if exists resource_samples_service_role on public.resource_samples;
create policy resource_samples_service_role on public.resource_samples as permissive for all to service_role using (true) with check (true);

-- Live probe results
create table if not exists public.probe_results (
  id bigint generated always as identity primary key,
  target text not null,
  checked_at timestamptz not null,
  kind text,
  status text not null,
  latency_ms double precision,
  status_code integer,
  error text,
  created_at timestamptz not null default now(),
  constraint probe_results_natural_key unique (target, checked_at)
);
create index if not exists probe_results_keyset on public.probe_results (created_at, id);
create index if not exists probe_results_checked_at on public.probe_results (checked_at);
alter table public.probe_results enable row level security;
revoke all on public.probe_results from anon, authenticated;
grant select, insert, update, delete on public.probe_results to service_role;
drop policy if exists probe_results_service_role on public.probe_results;
create policy probe_results_service_role on public.probe_results as permissive for all to service_role using (true) with check (true);

-- Application start-up and initialisation times
create table if not exists public.app_starts (
  id bigint generated always as identity primary key,
  host text not null,
  started_at timestamptz not null,
  startup_ms double precision,
  init_ms double precision,
  release text,
  created_at timestamptz not null default now(),
  constraint app_starts_natural_key unique (host, started_at)
);
create index if not exists app_starts_keyset on public.app_starts (created_at, id);
create index if not exists app_starts_started_at on public.app_starts (started_at);
alter table public.app_starts enable row level security;
revoke all on public.app_starts from anon, authenticated;
grant select, insert, update, delete on public.app_starts to service_role;
drop policy if exists app_starts_service_role on public.app_starts;
create policy app_starts_service_role on public.app_starts as permissive for all to service_role using (true) with check (true);

-- First exposure of each unit to an experiment
create table if not exists public.experiment_exposures (
  id bigint generated always as identity primary key,
  experiment_key text not null,
  unit_id text not null,
  unit_type text,
  variant text not null,
  exposed_at timestamptz not null,
  created_at timestamptz not null default now(),
  constraint experiment_exposures_natural_key unique (experiment_key, unit_id)
);
create index if not exists experiment_exposures_keyset on public.experiment_exposures (created_at, id);
create index if not exists experiment_exposures_exposed_at on public.experiment_exposures (exposed_at);
alter table public.experiment_exposures enable row level security;
revoke all on public.experiment_exposures from anon, authenticated;
grant select, insert, update, delete on public.experiment_exposures to service_role;
drop policy if exists experiment_exposures_service_role on public.experiment_exposures;
create policy experiment_exposures_service_role on public.experiment_exposures as permissive for all to service_role using (true) with check (true);

-- Experiment definitions the SDK reads (refreshed in the background; see docs/sdk.md).
create table if not exists public.experiments (
  id bigint generated always as identity primary key,
  key text not null unique,
  variants jsonb not null default '["control", "treatment"]',
  weights jsonb,
  status text not null default 'draft' check (status in ('draft', 'running', 'paused', 'stopped')),
  coverage double precision not null default 1.0 check (coverage between 0 and 1),
  seed text,
  hash_version integer not null default 2 check (hash_version in (1, 2)),
  unit_type text not null default 'call',
  description text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index if not exists experiments_keyset on public.experiments (created_at, id);
alter table public.experiments enable row level security;
revoke all on public.experiments from anon, authenticated;
grant select, insert, update, delete on public.experiments to service_role;
drop policy if exists experiments_service_role on public.experiments;
create policy experiments_service_role on public.experiments as permissive for all to service_role using (true) with check (true);
