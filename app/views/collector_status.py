"""Collectors: each source's status and schedule, run now with progress, recent runs, rejects."""

from datetime import UTC, datetime

import streamlit as st

from analysis import collector_health
from app import data
from app.failures import fragment
from app.safe_text import markdown_literal
from app.widgets import data_table
from collectors.control import ControlStoreError, ScheduleError

st.title("Collectors")
control = data.control_store()
try:
    service = control.service_info()
    schedules = control.schedules()
    live = control.progress()
except ControlStoreError as exc:  # not even recovering it helped (e.g. a read-only disk)
    st.error(markdown_literal(f"{exc} Schedules and run-now requests are unavailable."))
    st.stop()
if service.get("pid"):
    st.caption(
        f"Collectors service running (pid {service['pid']}), "
        f"last heartbeat {service.get('heartbeat')}."
    )
else:
    st.warning(
        "The collectors service is not running: start it with `make run` "
        "(or `workbench serve`). Schedules and run-now requests wait for it."
    )

failing = service.get("publish_error")
if failing:
    st.error(
        markdown_literal(
            f"Publishing the snapshot is failing: {failing['message']}. Failing since "
            f"{failing['since']} ({failing['attempts']} attempt(s)); the next attempt is at "
            f"{failing['retry_at']}. Pages show the last published data meanwhile."
        )
    )
for job, p in sorted(live.items()):
    if p.get("state") == "hung":
        st.warning(
            markdown_literal(
                f"{job} is not responding: its run {p.get('message') or 'stopped making progress'}."
                f" The run was abandoned; {job} is skipped until the stuck call returns, and "
                "the other sources keep their schedules."
            )
        )

now = datetime.now(UTC).replace(tzinfo=None)
status = collector_health.source_status(data.cursor(), now, configured=list(schedules))
st.subheader("Sources")
data_table(
    status,
    hide_index=True,
    width="stretch",
    column_config={
        "source": "Source",
        "last_run": st.column_config.DatetimeColumn("Last run (UTC)"),
        "last_status": "Status",
        "last_error": "Last error",
        "last_success": st.column_config.DatetimeColumn("Last success (UTC)"),
        "lag_minutes": st.column_config.NumberColumn("Lag (min)", format="%.1f"),
        "failed_runs": "Failed runs",
        "rows_inserted": st.column_config.NumberColumn("Rows collected", format="%d"),
        "rows_rejected": st.column_config.NumberColumn("Rows rejected", format="%d"),
        "configured": "Configured",
    },
)

st.subheader("Schedules")
if not schedules:
    st.caption("No schedules yet: the service creates one per configured source when it starts.")
for job, schedule in schedules.items():
    with st.expander(f"{job}: {schedule.describe()}{'' if schedule.enabled else ' (paused)'}"):
        with st.form(f"schedule-{job}"):
            kind = st.radio(
                "Kind",
                ["interval", "cron"],
                horizontal=True,
                index=0 if schedule.kind == "interval" else 1,
            )
            every = st.number_input(
                "Every (seconds)", min_value=5, value=schedule.every_seconds or 60, step=5
            )
            cron = st.text_input("Cron expression (UTC)", value=schedule.cron or "*/5 * * * *")
            timeout = st.number_input(
                "Run timeout (seconds without progress; empty: the service's default)",
                min_value=1,
                value=schedule.timeout_s,
                step=30,
            )
            enabled = st.checkbox("Enabled", value=schedule.enabled)
            if st.form_submit_button("Save schedule"):
                try:
                    control.set_schedule(
                        job,
                        kind,
                        int(every) if kind == "interval" else None,
                        cron if kind == "cron" else None,
                        enabled,
                        int(timeout) if timeout else None,
                    )
                    st.success("Saved; the service picks it up within a few seconds.")
                except ScheduleError as exc:
                    st.error(str(exc))
        if st.button("Run now", key=f"run-{job}"):
            request_id, already = control.queue_run(job)
            st.session_state[f"request-{job}"] = request_id
            if already:
                st.info(
                    markdown_literal(
                        f"A run of {job} is already queued (request {request_id}); it starts "
                        "as soon as the service is free."
                    )
                )


@fragment(run_every="1s")
def progress():
    requests = {job: st.session_state.get(f"request-{job}") for job in schedules}
    live = control.progress()
    for job, request_id in requests.items():
        if request_id is None:
            continue
        request = control.request(request_id) or {}
        p = live.get(job, {})
        if request.get("status") in ("pending", "running"):
            done, total = p.get("done"), p.get("total")
            text = f"{job}: {request['status']}, {p.get('rows_read', 0):,} rows read"
            st.progress(min(1.0, done / total) if done and total else 0.0, text=text)
        else:
            st.caption(
                markdown_literal(
                    f"{job}: last requested run finished {request.get('status')}"
                    + (f": {request['message']}" if request.get("message") else "")
                )
            )


progress()

st.subheader("Recent runs")
data_table(collector_health.recent_runs(data.cursor()), hide_index=True, width="stretch")
st.subheader("Rejected rows")
st.caption("Rows that did not fit the schema, with the reason. Everything valid was kept.")
data_table(collector_health.recent_rejects(data.cursor()), hide_index=True, width="stretch")
