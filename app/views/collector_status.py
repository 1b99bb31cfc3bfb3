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
        "rows_inserted": st.column_config.NumberColumn("Rows collected", format="localized"),
        "rows_rejected": st.column_config.NumberColumn("Rows rejected", format="localized"),
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


RUN_COLUMNS = {
    "run_id": st.column_config.NumberColumn("Run", format="%d"),
    "source": "Source",
    "started_at": st.column_config.DatetimeColumn("Started (UTC)"),
    "ended_at": st.column_config.DatetimeColumn("Ended (UTC)"),
    "seconds": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
    "status": "Status",
    "rows_read": st.column_config.NumberColumn("Rows read", format="localized"),
    "rows_inserted": st.column_config.NumberColumn("New rows", format="localized"),
    "rows_updated": st.column_config.NumberColumn("Updated rows", format="localized"),
    "rows_rejected": st.column_config.NumberColumn("Rejected rows", format="localized"),
    "attempts": st.column_config.NumberColumn("Attempts", format="%d"),
    "error": st.column_config.TextColumn("Why it failed", width="large"),
}
SAY = {"failed": st.error, "partial": st.warning, "ok": st.success}


# Refreshes by itself: a requested run's progress, then its result with row counts (or why it
# failed), and the recent runs as the service publishes them.
@fragment(run_every="2s")
def runs() -> None:
    live = control.progress()
    con = data.cursor()
    for job in schedules:
        request_id = st.session_state.get(f"request-{job}")
        if request_id is None:
            continue
        request = control.request(request_id) or {}
        run_id = request.get("run_id")
        run = collector_health.run_by_id(con, int(run_id)) if run_id is not None else None
        state, text, share = collector_health.run_now_status(job, request, live.get(job), run)
        if state in ("waiting", "starting", "running"):
            st.progress(share or 0.0, text=markdown_literal(text))
        else:
            SAY.get(state, st.info)(markdown_literal(text))
    st.subheader("Recent runs")
    recent = collector_health.recent_runs(con)
    failed = int((recent["status"] == "failed").sum()) if not recent.empty else 0
    if failed:
        st.caption(
            f"{failed} of the last {len(recent)} runs failed; the reason is in the last column."
        )
    data_table(recent, hide_index=True, width="stretch", column_config=RUN_COLUMNS)


runs()

st.subheader("Rejected rows")
st.caption("Rows that did not fit the schema, with the reason. Everything valid was kept.")
data_table(
    collector_health.recent_rejects(data.cursor()),
    hide_index=True,
    width="stretch",
    column_config={
        "rejected_at": st.column_config.DatetimeColumn("Rejected (UTC)"),
        "source": "Source",
        "table_name": "Table",
        "reason": st.column_config.TextColumn("Reason", width="large"),
        "row_json": "Row as received",
    },
)
