"""Alerts: what fires now and why, the history of every alert on a timeline, silences, and the
rules (test one now, add or change one). Writes go to the control store; the collectors
service applies them at its next evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from analysis.alerts.kinds import KINDS
from analysis.deployments import deployments
from analysis.metrics import catalogue
from app import data
from app.charts import add_deploy_markers, show
from app.failures import fragment
from app.safe_text import markdown_literal, plain
from app.widgets import PERIOD_KEY, data_table, freshness_banner, period_covering
from collectors.alerts import summaries
from collectors.alerts.store import AlertInputError, parse_time
from collectors.control import ControlStoreError

HISTORY_DAYS = {"Last 24 hours": 1, "Last 7 days": 7, "Last 30 days": 30}

st.title("Alerts")
freshness_banner()


store = data.alert_store()
now = datetime.now(UTC).replace(tzinfo=None)
metrics = catalogue(data.custom_metrics())
author = st.session_state.get("alert_author", "")


def open_evidence(evidence: dict[str, Any]) -> None:
    """Focus the page that explains an alert, then go there."""
    for key, value in (evidence.get("focus") or {}).items():
        st.session_state[key] = value
    # The period is a widget bound to the URL (app/widgets.py): it is set through the link,
    # the shortest that shows the episode. Focused widgets bound to the URL (the Anomalies
    # page's metric and sensitivity) then write their own labels into the address.
    period = period_covering(parse_time(evidence.get("start")), now)
    st.switch_page(f"views/{evidence['page']}.py", query_params={PERIOD_KEY: period})


try:
    evaluated = store.meta("evaluated_at")
    receivers = store.meta("receivers") or []
    replayed_until = store.meta("replayed_until")
except ControlStoreError as exc:
    st.error(markdown_literal(f"{exc} Alerts are unavailable."))
    st.stop()
if evaluated:
    st.caption(
        markdown_literal(
            f"Rules last evaluated at {evaluated[:19]} UTC. Notifications go to: "
            f"{', '.join(receivers) or 'nowhere yet'}."
        )
    )
else:
    st.info("The collectors service has not evaluated the alert rules yet.")
for name, error in (store.meta("rule_errors") or {}).items():
    st.warning(markdown_literal(f"Rule {name} could not be evaluated: {error}"))
for name, problems in (store.meta("rule_problems") or {}).items():
    st.warning(
        markdown_literal(f"Rule {name} from this page is not in effect: {' '.join(problems)}")
    )

tab_now, tab_history, tab_silences, tab_rules, tab_sent = st.tabs(
    ["Firing now", "History", "Silences", "Rules", "Notifications"]
)

with tab_now:
    active = summaries.active_table(store, now)
    if active.empty:
        st.success("Nothing is firing or pending.")
    else:
        data_table(
            active.drop(columns=["fingerprint", "episode", "evidence"]),
            hide_index=True,
            width="stretch",
            column_config={
                "since": st.column_config.DatetimeColumn("since (UTC)"),
                "summary": st.column_config.TextColumn("summary", width="large"),
            },
        )
        for row in active.itertuples():
            title = f"{row.state}: {row.alert} {row.labels}".strip()
            with st.expander(markdown_literal(title, 150)):
                st.markdown(markdown_literal(row.summary))
                if row.muted or row.acknowledged:
                    st.caption(markdown_literal(f"{row.muted} {row.acknowledged}".strip()))
                if row.evidence:
                    page = row.evidence["page"].replace("_", " ")
                    if st.button(f"Open the evidence: {page}", key=f"evidence-{row.fingerprint}"):
                        open_evidence(row.evidence)
                with st.form(f"ack-{row.fingerprint}"):
                    who = st.text_input("Your name", value=author, key=f"ack-who-{row.fingerprint}")
                    why = st.text_input("Comment", key=f"ack-why-{row.fingerprint}")
                    if st.form_submit_button("Acknowledge (no repeats until it resolves)"):
                        try:
                            store.acknowledge(row.fingerprint, row.episode, who, why, now)
                            st.session_state["alert_author"] = who
                            st.rerun()
                        except AlertInputError as exc:
                            st.error(markdown_literal(exc))
                if st.button("Silence this alert", key=f"silence-{row.fingerprint}"):
                    labels = store.load_alerts()[row.fingerprint].labels
                    st.session_state["silence_matchers"] = summaries.matchers_for(dict(labels))
                    st.info("The matchers are filled in on the Silences tab.")

with tab_history:
    span = st.selectbox("Period", list(HISTORY_DAYS), index=1, key="alert_history_period")
    start = now - timedelta(days=HISTORY_DAYS[span])
    episodes = summaries.episodes_table(store, start, now)
    if replayed_until:
        st.caption(
            markdown_literal(
                f"Alerts before {replayed_until[:16]} UTC were replayed from the data when the "
                "workbench first started, as if the rules had run then: they were never notified."
            )
        )
    if episodes.empty:
        st.caption("No alert was pending or firing in this period.")
    else:
        figure = summaries.timeline_figure(episodes, start, now)
        show(add_deploy_markers(figure, deployments(data.cursor(), start, now)))
        data_table(
            episodes[
                [
                    "severity",
                    "rule",
                    "labels_text",
                    "started",
                    "fired",
                    "ended",
                    "notified",
                    "summary",
                ]
            ],
            hide_index=True,
            width="stretch",
            column_config={
                "labels_text": "labels",
                "started": st.column_config.DatetimeColumn("pending from (UTC)"),
                "fired": st.column_config.DatetimeColumn("fired (UTC)"),
                "ended": st.column_config.DatetimeColumn("ended (UTC)"),
                "summary": st.column_config.TextColumn("summary", width="large"),
            },
        )

        @fragment
        def one_alert() -> None:
            chosen = st.selectbox(
                "An alert's history",
                list(episodes.index),
                format_func=lambda i: plain(
                    f"{episodes.loc[i, 'rule']} {episodes.loc[i, 'labels_text']} "
                    f"at {str(episodes.loc[i, 'started'])[:16]}"
                ),
                key="alert_history_choice",
            )
            episode = episodes.loc[chosen]
            st.markdown(markdown_literal(episode["summary"] or "(no summary)"))
            if episode["evidence"]:
                if st.button("Open the evidence", key="history-evidence"):
                    open_evidence(episode["evidence"])
            data_table(store.history(episode["fingerprint"]), hide_index=True, width="stretch")

        one_alert()

with tab_silences:
    st.caption(
        "A silence mutes the notifications of the alerts it matches (they still show here) "
        "until it ends. Start it later to cover planned maintenance."
    )
    with st.form("new-silence"):
        matchers = st.text_area(
            "Matchers, one per line (name=value, name!=value, name=~regex, name!~regex)",
            key="silence_matchers",
            placeholder='alertname="dependency_down"\ntarget="supabase"',
        )
        c1, c2 = st.columns(2)
        hours = c1.number_input("For (hours)", min_value=0.25, value=2.0, step=0.25)
        later = c2.number_input("Starting in (hours)", min_value=0.0, value=0.0, step=0.5)
        who = st.text_input("Your name", value=author, key="silence_author")
        why = st.text_input("Comment (why)", key="silence_comment")
        if st.form_submit_button("Create silence"):
            try:
                number = summaries.create_silence(store, matchers, who, why, hours, now, later)
                st.session_state["alert_author"] = who
                st.success(f"Silence {number} created; the next notification respects it.")
            except (AlertInputError, ValueError) as exc:
                st.error(markdown_literal(exc))
    silences = summaries.silences_table(store, now)
    if silences.empty:
        st.caption("No silences yet.")
    else:
        data_table(silences, hide_index=True, width="stretch")
        live = silences[silences["state"] != "expired"]
        if not live.empty:
            chosen = st.selectbox("Silence to end", list(live["id"]), key="silence_to_expire")
            if st.button("End this silence now"):
                store.expire_silence(int(chosen), now)
                st.rerun()

with tab_rules:
    rules = summaries.rules_table(store)
    if rules.empty:
        st.caption("The service announces its rules at its first evaluation.")
    else:
        data_table(rules, hide_index=True, width="stretch")
    definitions = {r["name"]: r for r in store.meta("rules") or []}
    NEW = "+ New rule"
    choice = st.selectbox("Rule", [*definitions, NEW], key="rule_choice")
    if choice == NEW:
        kind = st.selectbox("Kind", list(KINDS), format_func=lambda k: KINDS[k].title)
        text = summaries.rule_template(kind)
    else:
        text = summaries.rule_text(definitions[choice])
    edited = st.text_area(
        "Definition (TOML, as in [[alerts.rules]])", text, height=300, key=f"rule_text_{choice}"
    )
    rule, definition, problems = summaries.parse_rule_text(edited, metrics)
    for problem in problems:
        st.error(markdown_literal(problem))
    c1, c2, c3 = st.columns(3)
    if c1.button("Test: would it fire now?", disabled=rule is None) and rule is not None:
        try:
            found = summaries.rule_check_now(store, data.cursor(), rule, metrics, now)
        except Exception as exc:  # noqa: BLE001 - a rule the user is writing may not run
            st.error(
                markdown_literal(f"The rule could not be checked: {type(exc).__name__}: {exc}")
            )
        else:
            if found.empty:
                st.info("It would not fire now: no label set meets its condition.")
            else:
                st.warning(f"It would fire now on {len(found)} label set(s) (after its 'for').")
                data_table(found, hide_index=True, width="stretch")
    who = c3.text_input("Your name", value=author, key="rule_author")
    if c2.button("Save (the service applies it)", disabled=rule is None) and rule is not None:
        try:
            summaries.save_rule(store, definition, who, now)
            st.success("Saved; the service applies it at its next evaluation.")
        except AlertInputError as exc:
            st.error(markdown_literal(exc))
    if choice != NEW and definitions[choice].get("origin") == "app":
        if st.button("Forget this page's version (back to the file's or the default)"):
            store.delete_rule(choice, now)
            st.success("Done; the service applies it at its next evaluation.")

with tab_sent:
    sent = store.notifications()
    if sent.empty:
        st.caption("No notification yet.")
    else:
        st.caption(
            "Each notification is kept before it is sent and delivered to every receiver in "
            "order; failed deliveries are retried with backoff."
        )
        for column in ("created_at", "due_at", "frozen_at", "sent_at"):
            sent[column] = sent[column].map(parse_time)
        data_table(sent, hide_index=True, width="stretch")
