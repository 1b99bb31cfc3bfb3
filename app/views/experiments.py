"""Experiments: define an A/B test, start/pause/stop it, plan its size, read its result."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st

from analysis import experiments as ex
from analysis import overview
from analysis.changes import ExperimentPlan, decide
from analysis.experiment_rules import METHODS, UNIT_TYPES, Method, Status, next_statuses
from analysis.experiment_view import default_experiment, results_table
from analysis.metrics import metric_registry
from app import data
from app.charts import add_deploy_markers, show
from app.safe_text import markdown_literal, plain
from app.widgets import data_table, freshness_banner
from collectors.control import ExperimentError, SavedExperiment

st.title("Experiments")

METHOD_LABELS: dict[Method, str] = {
    "sequential": "Sequential (safe to check daily)",
    "fixed": "Fixed horizon (decide once, at the planned size)",
    "bayesian": "Bayesian (chance to beat control)",
}
# The button for each status change the rules allow.
ACTION_LABELS: dict[tuple[Status, Status], str] = {
    ("draft", "running"): "Start",
    ("running", "paused"): "Pause",
    ("paused", "running"): "Resume",
    ("running", "stopped"): "Stop",
    ("paused", "stopped"): "Stop",
}
DEFAULT_PRIMARY = ("resolved_rate",)
DEFAULT_GUARDRAILS = ("p95_e2e_latency", "llm_ttft", "abandoned_rate")
NEW = "+ New experiment"

registry = metric_registry(data.custom_metrics())
store = data.control_store()


def _day(value: str | dt.datetime | None) -> dt.date | None:
    if value is None:
        return None
    return (dt.datetime.fromisoformat(value) if isinstance(value, str) else value).date()


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else dt.datetime.combine(day, dt.time()).isoformat()


def imported(found: dict) -> SavedExperiment:
    """A definition for an experiment seen only in the exposures (e.g. the demo's)."""
    n = len(found["variants"])
    return SavedExperiment(
        key=found["key"],
        name=found["key"],
        variants=found["variants"],
        weights=tuple([1 / n] * n),
        unit_type=found["unit_type"] if found["unit_type"] in UNIT_TYPES else "call",
        primary_metrics=DEFAULT_PRIMARY,
        guardrail_metrics=DEFAULT_GUARDRAILS,
        hypothesis="Imported from the exposures the agent recorded.",
        start_at=_iso(_day(found["first"])),
        method="sequential",
        status="running",
    )


@st.cache_data(ttl=600, show_spinner="Evaluating the experiment…", max_entries=32)
def evaluate(version: int, e: SavedExperiment, method: Method) -> ex.ExperimentResult:
    metrics = [registry[m] for m in (*e.primary_metrics, *e.guardrail_metrics) if m in registry]
    return ex.evaluate_experiment(data.cursor(), ex.experiment_definition(e), metrics, method)


# ---------------------------------------------------------------- defining and saving


def save_from_form(prefix: str, revision: int) -> None:
    """Save the form; `revision` is the one the form was drawn from (0: a new experiment), so
    a save over someone else's newer one is refused."""
    s = st.session_state
    try:
        variants = tuple(v.strip() for v in s[f"{prefix}variants"].split(","))
        weights = tuple(float(w) for w in s[f"{prefix}weights"].split(","))
    except ValueError:
        s["experiment_flash"] = ("error", "Weights must be numbers separated by commas.")
        return
    try:
        saved = store.save_experiment(
            SavedExperiment(
                key=s[f"{prefix}key"].strip(),
                name=s[f"{prefix}name"],
                hypothesis=s[f"{prefix}hypothesis"],
                variants=variants,
                weights=weights,
                unit_type=s[f"{prefix}unit"],
                primary_metrics=tuple(s[f"{prefix}primary"]),
                guardrail_metrics=tuple(s[f"{prefix}guardrails"]),
                start_at=_iso(s[f"{prefix}start"]),
                end_at=_iso(s[f"{prefix}end"]),
                method=s[f"{prefix}method"],
                revision=revision,
            )
        )
    except ExperimentError as exc:
        s["experiment_flash"] = ("error", str(exc))
        return
    submitted = s[f"{prefix}key"].strip()
    if saved.key != submitted:
        s["experiment_flash"] = (
            "info",
            f"{submitted} has started, so its variants, split and unit are locked: your change "
            f"was saved as a new version, {saved.key} (draft). Start it when ready; the agent "
            f"assigns it by its own key.",
        )
    else:
        s["experiment_flash"] = ("success", f"Saved experiment {saved.key} ({saved.status}).")
    s["experiment_choice"] = saved.key


def definition_form(e: SavedExperiment | None) -> None:
    prefix = f"def_{e.key if e else 'new'}_"
    with st.form(f"{prefix}form"):
        c1, c2 = st.columns(2)
        c1.text_input(
            "Key (what the agent's SDK assigns by)",
            e.key if e else "",
            key=f"{prefix}key",
            disabled=e is not None,
        )
        c2.text_input("Name", e.name if e else "", key=f"{prefix}name")
        st.text_area(
            "Hypothesis",
            e.hypothesis if e else "",
            key=f"{prefix}hypothesis",
            placeholder="We believe that … will raise … because …",
        )
        if e is not None and e.status != "draft":
            st.caption(
                "This experiment has started: its variants, split and unit are locked. "
                "Changing them saves a new version (a draft under a new key)."
            )
        c1, c2, c3 = st.columns(3)
        c1.text_input(
            "Variants (control first)",
            ", ".join(e.variants) if e else "control, treatment",
            key=f"{prefix}variants",
        )
        c2.text_input(
            "Split (weights, same order)",
            ", ".join(f"{w * 100:g}" for w in e.weights) if e else "50, 50",
            key=f"{prefix}weights",
        )
        c3.radio(
            "Randomisation unit",
            UNIT_TYPES,
            index=UNIT_TYPES.index(e.unit_type if e else "call"),
            key=f"{prefix}unit",
            horizontal=True,
        )
        names = list(registry)
        c1, c2 = st.columns(2)
        c1.multiselect(
            "Primary metrics",
            names,
            [m for m in (e.primary_metrics if e else DEFAULT_PRIMARY) if m in registry],
            format_func=lambda n: registry[n].title,
            key=f"{prefix}primary",
        )
        c2.multiselect(
            "Guardrail metrics (must not get worse)",
            names,
            [m for m in (e.guardrail_metrics if e else DEFAULT_GUARDRAILS) if m in registry],
            format_func=lambda n: registry[n].title,
            key=f"{prefix}guardrails",
        )
        c1, c2, c3 = st.columns(3)
        c1.date_input("Start", _day(e.start_at) if e else dt.date.today(), key=f"{prefix}start")
        c2.date_input("End (last day, optional)", _day(e.end_at) if e else None, key=f"{prefix}end")
        c3.selectbox(
            "Method",
            METHODS,
            index=METHODS.index(e.method if e else "sequential"),
            format_func=METHOD_LABELS.get,
            key=f"{prefix}method",
        )
        st.form_submit_button(
            "Save experiment",
            on_click=save_from_form,
            args=(prefix, e.revision if e else 0),
            type="primary",
        )


def act(change: Callable[..., object], *args: object) -> None:
    """Run a store change; its refusal is one sentence on the page."""
    try:
        change(*args)
    except ExperimentError as exc:
        st.session_state["experiment_flash"] = ("error", str(exc))
    st.rerun()


def status_controls(e: SavedExperiment) -> None:
    actions = [
        (ACTION_LABELS.get((e.status, status), status.title()), status)
        for status in next_statuses(e.status)
    ]
    cols = st.columns(max(len(actions), 1) + 3)
    cols[0].markdown(f"**Status:** {e.status}")
    for col, (label, status) in zip(cols[1:], actions, strict=False):
        if col.button(label, key=f"status_{e.key}_{status}"):
            try:
                store.set_experiment_status(e.key, status)
            except ExperimentError as exc:
                st.error(markdown_literal(str(exc)))
            st.rerun()
    keep = st.columns(4)
    if e.status in ("draft", "stopped") and not e.archived:
        if keep[0].button("Archive", key=f"archive_{e.key}", help="Hide it from the list"):
            act(store.archive_experiment, e.key)
    if e.archived and keep[0].button("Restore from archive", key=f"restore_{e.key}"):
        act(store.archive_experiment, e.key, False)
    if e.status == "draft" and keep[1].button("Delete draft", key=f"delete_{e.key}"):
        act(store.delete_experiment, e.key)
    info = store.service_info().get("experiment_sync")
    if info:
        st.caption(markdown_literal(f"Supabase sync: {info}"))
    else:
        st.caption(
            "Status changes reach the agent's SDK through Supabase when the collectors "
            "service has Supabase configured."
        )


# ---------------------------------------------------------------- results


def over_time_chart(result: ex.ExperimentResult, metric: str) -> go.Figure | None:
    fig = go.Figure()
    days: list[dt.date] = []
    for r in result.results:
        if r.metric != metric or not r.daily:
            continue
        scale = 100 if r.metric_type == "proportion" else 1
        x = [d.day for d in r.daily]
        days += x
        eff = [d.result.effect * scale for d in r.daily]
        lo = [d.result.ci_low * scale for d in r.daily]
        hi = [d.result.ci_high * scale for d in r.daily]
        fig.add_trace(
            go.Scatter(x=x + x[::-1], y=hi + lo[::-1], fill="toself", opacity=0.2,
                       line={"width": 0}, name=f"{r.arm} interval", hoverinfo="skip")
        )  # fmt: skip
        fig.add_trace(go.Scatter(x=x, y=eff, mode="lines+markers", name=f"{r.arm} effect"))
        unit = "points" if r.metric_type == "proportion" else r.unit
        fig.update_layout(yaxis_title=f"{r.label}: treatment − control ({unit})")
    if not days:
        return None
    fig.add_hline(y=0, line_color="#444", line_width=1)
    fig.update_layout(
        title="Cumulative effect and interval, by day",
        height=380,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.15},
    )
    start = dt.datetime.combine(min(days), dt.time())
    end = dt.datetime.combine(max(days), dt.time()) + dt.timedelta(days=1)
    return add_deploy_markers(fig, overview.deployments(data.cursor(), start, end))


def show_result(e: SavedExperiment) -> None:
    method = st.selectbox(
        "Analysis method",
        METHODS,
        index=METHODS.index(e.method),
        format_func=METHOD_LABELS.get,
        key=f"method_{e.key}",
    )
    result = evaluate(data.manifest().get("version", 0), e, method)
    if not result.computable:
        st.info(markdown_literal(f"No result yet for {e.key}: {result.reason}."))
        return
    plan = ExperimentPlan(
        ex.experiment_definition(e),
        tuple(registry[m] for m in e.primary_metrics if m in registry),
        tuple(registry[m] for m in e.guardrail_metrics if m in registry),
        method,
    )
    decision = decide(plan)(result)
    show_decision = {"ship": st.success, "stop": st.error, "check assignment": st.warning}
    show_decision.get(decision.decision, st.info)(markdown_literal(decision.summary))
    summary = ex.verdict(result, e.primary_metrics, e.guardrail_metrics)
    box = st.warning if result.srm and result.srm.flagged else st.info
    box(markdown_literal(summary))
    if result.srm is not None:
        (st.error if result.srm.flagged else st.caption)(markdown_literal(result.srm.message))
    cols = st.columns(len(result.units))
    for col, (arm, n) in zip(cols, result.units.items(), strict=True):
        col.metric(markdown_literal(f"Units in {arm}", 80), f"{n:,}")
    data_table(results_table(result, e.primary_metrics), hide_index=True, width="stretch")
    for note in result.notes:
        st.caption(markdown_literal(note))
    charted = [r.metric for r in result.results if r.daily]
    if charted:
        metric = st.selectbox(
            "Effect over time for",
            list(dict.fromkeys(charted)),
            format_func=lambda n: registry[n].title if n in registry else n,
            key=f"chart_{e.key}",
        )
        fig = over_time_chart(result, metric)
        if fig is not None:
            show(fig)
        if method == "fixed":
            st.caption(
                "Fixed-horizon intervals drawn every day are for context only: checking daily "
                "inflates false alarms. Use the sequential method to act on a daily look."
            )


def show_plan(e: SavedExperiment) -> None:
    plannable = [m for m in (*e.primary_metrics, *e.guardrail_metrics) if m in registry]
    plannable = [m for m in plannable if registry[m].type != "quantile"] or ["resolved_rate"]
    c1, c2, c3, c4 = st.columns(4)
    metric = c1.selectbox(
        "Metric", plannable, format_func=lambda n: registry[n].title, key=f"plan_m_{e.key}"
    )
    lift = c2.number_input(
        "Smallest change worth detecting (relative %)", 0.5, 100.0, 5.0, 0.5, key=f"plan_l_{e.key}"
    )
    power = c3.number_input("Power (%)", 50.0, 99.0, 80.0, 5.0, key=f"plan_p_{e.key}")
    share = c4.number_input(
        "Traffic in the experiment (%)", 1.0, 100.0, 100.0, 5.0, key=f"plan_s_{e.key}"
    )
    measured = [m for m in (*e.primary_metrics, *e.guardrail_metrics) if m in registry]
    comparisons = ex.planned_comparisons(len(measured), len(e.variants))
    alpha = ex.experiment_definition(e).alpha
    plan, baseline, daily = ex.plan_for_metric(
        data.cursor(),
        registry[metric],
        lift / 100,
        arms=len(e.variants),
        unit_type=e.unit_type,
        method=e.method if e.method != "bayesian" else "fixed",
        target_power=power / 100,
        traffic_share=share / 100,
        comparisons=comparisons,
    )
    if not plan.computable:
        st.info(markdown_literal(f"Cannot plan on {registry[metric].title}: {plan.reason}."))
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("Units per arm", f"{plan.n_per_arm:,}")
    c2.metric("Total units", f"{plan.total_units:,}")
    c3.metric("Days at current traffic", f"{plan.days:,}" if plan.days else "never")
    st.caption(
        markdown_literal(
            f"Baseline {registry[metric].title}: {baseline.mean:.4g} over {baseline.units:,} "
            f"recent units; current traffic {daily:,.0f} {e.unit_type}s a day (last 7 days). "
            f"Planned at a {alpha * 100 / comparisons:.3g} % significance level per comparison: the "
            f"result corrects for {comparisons} comparison(s) ({len(measured)} metric(s) × "
            f"{len(e.variants) - 1} variant(s) against control)."
        )
    )
    if e.status != "draft":
        result = evaluate(data.manifest().get("version", 0), e, e.method)
        so_far = ex.power_so_far(
            result,
            ex.experiment_definition(e),
            metric,
            lift / 100,
            power / 100,
            daily * share / 100,
        )
        if so_far is not None:
            st.markdown(markdown_literal(so_far.sentence))


# ---------------------------------------------------------------- the page

freshness_banner()
config_problem = data.config_problem()
if config_problem:  # the built-in metrics still work
    st.warning(markdown_literal(config_problem))
flash = st.session_state.pop("experiment_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])

con = data.cursor()
every = store.experiments()
discovered = ex.discovered_experiments(con)
show_archived = st.toggle("Show archived experiments", key="experiments_archived")
saved = {k: e for k, e in every.items() if show_archived or not e.archived}
found = {f["key"]: f for f in discovered if f["key"] not in every}
choices = [*saved, *found, NEW]
linked = st.query_params.get("experiment_choice")
if linked in choices and linked != NEW:  # a link (e.g. from the Overview) names the key
    st.session_state["experiment_choice"] = linked
elif st.session_state.get("experiment_choice") not in choices:
    st.session_state["experiment_choice"] = (
        default_experiment(
            choices[:-1],
            {k: e.status for k, e in saved.items()},
            {f["key"]: sum(f["units"].values()) for f in discovered},
        )
        or NEW
    )


def label(key: str) -> str:
    if key in saved:
        archived = ", archived" if saved[key].archived else ""
        return plain(f"{saved[key].name} ({saved[key].status}{archived})")
    if key in found:
        return plain(f"{key} (found in exposures, not saved yet)")
    return plain(key)


choice = st.selectbox(
    "Experiment", choices, format_func=label, key="experiment_choice", bind="query-params"
)

if choice == NEW:
    st.subheader("Define an experiment")
    definition_form(None)
else:
    e = saved.get(choice) or imported(found[choice])
    if choice in found:
        st.caption(
            "This experiment's exposures were recorded by the agent but it has no saved "
            "definition: the result below uses default metrics. Save it to keep your choices."
        )
        if st.button("Save this definition", key=f"import_{choice}"):
            try:
                store.save_experiment(e)
            except ExperimentError as exc:  # saved meanwhile by someone else
                st.session_state["experiment_flash"] = ("error", str(exc))
            st.rerun()
    else:
        if e.hypothesis:
            st.markdown("**Hypothesis:**")
            st.text(plain(e.hypothesis, None))
        status_controls(e)
    tab_result, tab_plan, tab_define = st.tabs(["Result", "Plan", "Definition"])
    with tab_result:
        show_result(e)
    with tab_plan:
        show_plan(e)
    with tab_define:
        definition_form(e)
