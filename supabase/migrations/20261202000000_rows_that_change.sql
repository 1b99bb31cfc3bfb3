-- Rows that change, read by when they changed.
--
-- Every SDK table gets `updated_at`, set to now() on insert (the default) and on every update
-- (a trigger), with a (updated_at, id) index: the collectors page on (updated_at, id) with an
-- overlap window, so a row that changes after it was first read (a call that ends) is read
-- again, and a row whose transaction committed late is still found (now() is the
-- transaction's start, not its commit; the overlap window covers the difference).
--
-- `calls` arrives in parts: the SDK writes a call when it starts and again when it ends, with
-- the same call_id, upserting with `Prefer: resolution=merge-duplicates`. Its trigger keeps
-- every known value: a later part fills in what the earlier one lacked and never blanks a
-- value already stored, so a call's end delivered before its start still leaves it complete.
--
-- Adding a column with a non-volatile default does not rewrite a table (PostgreSQL 11+);
-- existing rows get the migration's time, so the next collect re-reads them once (harmless:
-- the warehouse upserts by natural key).

create or replace function public.workbench_touch_updated_at() returns trigger
language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end
$$;

create or replace function public.workbench_merge_parts() returns trigger
language plpgsql as $$
begin
  -- the stored row, overlaid with the new row's known (non-null) values
  new := jsonb_populate_record(new, to_jsonb(old) || jsonb_strip_nulls(to_jsonb(new)));
  new.updated_at := now();
  return new;
end
$$;


alter table public.requests add column if not exists updated_at timestamptz not null default now();
create index if not exists requests_changes on public.requests (updated_at, id);
drop trigger if exists requests_updated_at on public.requests;
create trigger requests_updated_at before update on public.requests
  for each row execute function public.workbench_touch_updated_at();

alter table public.errors add column if not exists updated_at timestamptz not null default now();
create index if not exists errors_changes on public.errors (updated_at, id);
drop trigger if exists errors_updated_at on public.errors;
create trigger errors_updated_at before update on public.errors
  for each row execute function public.workbench_touch_updated_at();

alter table public.db_queries add column if not exists updated_at timestamptz not null default now();
create index if not exists db_queries_changes on public.db_queries (updated_at, id);
drop trigger if exists db_queries_updated_at on public.db_queries;
create trigger db_queries_updated_at before update on public.db_queries
  for each row execute function public.workbench_touch_updated_at();

alter table public.voice_turns add column if not exists updated_at timestamptz not null default now();
create index if not exists voice_turns_changes on public.voice_turns (updated_at, id);
drop trigger if exists voice_turns_updated_at on public.voice_turns;
create trigger voice_turns_updated_at before update on public.voice_turns
  for each row execute function public.workbench_touch_updated_at();

alter table public.calls add column if not exists updated_at timestamptz not null default now();
create index if not exists calls_changes on public.calls (updated_at, id);
drop trigger if exists calls_updated_at on public.calls;
create trigger calls_updated_at before update on public.calls
  for each row execute function public.workbench_merge_parts();

alter table public.voice_quality add column if not exists updated_at timestamptz not null default now();
create index if not exists voice_quality_changes on public.voice_quality (updated_at, id);
drop trigger if exists voice_quality_updated_at on public.voice_quality;
create trigger voice_quality_updated_at before update on public.voice_quality
  for each row execute function public.workbench_touch_updated_at();

alter table public.feedback add column if not exists updated_at timestamptz not null default now();
create index if not exists feedback_changes on public.feedback (updated_at, id);
drop trigger if exists feedback_updated_at on public.feedback;
create trigger feedback_updated_at before update on public.feedback
  for each row execute function public.workbench_touch_updated_at();

alter table public.feature_usage add column if not exists updated_at timestamptz not null default now();
create index if not exists feature_usage_changes on public.feature_usage (updated_at, id);
drop trigger if exists feature_usage_updated_at on public.feature_usage;
create trigger feature_usage_updated_at before update on public.feature_usage
  for each row execute function public.workbench_touch_updated_at();

alter table public.auth_events add column if not exists updated_at timestamptz not null default now();
create index if not exists auth_events_changes on public.auth_events (updated_at, id);
drop trigger if exists auth_events_updated_at on public.auth_events;
create trigger auth_events_updated_at before update on public.auth_events
  for each row execute function public.workbench_touch_updated_at();

alter table public.security_events add column if not exists updated_at timestamptz not null default now();
create index if not exists security_events_changes on public.security_events (updated_at, id);
drop trigger if exists security_events_updated_at on public.security_events;
create trigger security_events_updated_at before update on public.security_events
  for each row execute function public.workbench_touch_updated_at();

alter table public.resource_samples add column if not exists updated_at timestamptz not null default now();
create index if not exists resource_samples_changes on public.resource_samples (updated_at, id);
drop trigger if exists resource_samples_updated_at on public.resource_samples;
create trigger resource_samples_updated_at before update on public.resource_samples
  for each row execute function public.workbench_touch_updated_at();

alter table public.probe_results add column if not exists updated_at timestamptz not null default now();
create index if not exists probe_results_changes on public.probe_results (updated_at, id);
drop trigger if exists probe_results_updated_at on public.probe_results;
create trigger probe_results_updated_at before update on public.probe_results
  for each row execute function public.workbench_touch_updated_at();

alter table public.app_starts add column if not exists updated_at timestamptz not null default now();
create index if not exists app_starts_changes on public.app_starts (updated_at, id);
drop trigger if exists app_starts_updated_at on public.app_starts;
create trigger app_starts_updated_at before update on public.app_starts
  for each row execute function public.workbench_touch_updated_at();

alter table public.experiment_exposures add column if not exists updated_at timestamptz not null default now();
create index if not exists experiment_exposures_changes on public.experiment_exposures (updated_at, id);
drop trigger if exists experiment_exposures_updated_at on public.experiment_exposures;
create trigger experiment_exposures_updated_at before update on public.experiment_exposures
  for each row execute function public.workbench_touch_updated_at();
