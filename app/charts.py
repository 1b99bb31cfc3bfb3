"""Plotly charts shared by pages. Every time chart carries deploy markers; every chart is shown
through `show`, which escapes every text in it (app/safe_text.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app.safe_text import plotly_literal


def _escaped(node: Any, key: str = "") -> Any:
    # Hover and text templates are the page's own format strings ("%{x}<br>%{y}", written by
    # plotly.express from column names); everything else may hold data.
    if key.endswith("template"):
        return node
    if key in ("bdata", "dtype", "shape"):
        # Plotly's binary arrays (numbers as base64 typed arrays): data, not text; cut or
        # escaped they no longer decode and the chart draws nothing
        return node
    if isinstance(node, str):
        return plotly_literal(node)
    if isinstance(node, dict):
        return {k: _escaped(v, k) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_escaped(v, key) for v in node]
    if isinstance(node, np.ndarray) and node.dtype == object:
        return np.array([_escaped(v, key) for v in node], dtype=object)
    return node


def show(fig: go.Figure) -> None:
    """st.plotly_chart with every string of the figure escaped for Plotly: its titles, axis,
    tick and legend labels, hovers and annotations render <a href>, <b> and <br> from text, so
    a probe target or release named with a link would become one."""
    st.plotly_chart(_escaped(fig.to_plotly_json()), width="stretch")


# More labels than this overlap at a 30-day range: the rest are lines with the release on hover.
MAX_LABELS = 8


def add_deploy_markers(fig: go.Figure, deployments: pd.DataFrame) -> go.Figure:
    """A dashed vertical line per deployment (red for rollbacks), each named on hover; at most
    MAX_LABELS are labelled (rollbacks first, then evenly spread), so labels stay legible at
    any range. A deploy that failed never served traffic and gets no line."""
    if deployments is None or deployments.empty:
        return fig
    shown = deployments
    if "status" in shown:
        shown = shown[~shown["status"].astype(str).str.upper().isin(["FAILED", "CRASHED"])]
    rows = list(shown.itertuples())
    rollbacks = [i for i, r in enumerate(rows) if r.is_rollback]
    others = [i for i, r in enumerate(rows) if not r.is_rollback]
    room = max(0, MAX_LABELS - len(rollbacks))
    step = max(1, -(-len(others) // room)) if room else len(others) + 1
    labelled = set(rollbacks[:MAX_LABELS]) | set(others[::-1][::step][:room])
    for i, row in enumerate(rows):
        color = "#d62728" if row.is_rollback else "#7f7f7f"
        name = f"deploy {row.release}" + (" (rollback)" if row.is_rollback else "")
        fig.add_vline(x=row.created_at, line_dash="dash", line_color=color, line_width=1)
        fig.add_annotation(  # a label, or a small mark that names the release on hover
            x=row.created_at,
            y=1,
            yref="paper",
            text=row.release if i in labelled else "▾",
            hovertext=name,
            showarrow=False,
            textangle=-90 if i in labelled else 0,
            xanchor="left" if i in labelled else "center",
            yanchor="top",
            font={"size": 11 if i in labelled else 9, "color": color},
            bgcolor="rgba(255,255,255,0.7)" if i in labelled else None,
        )
    return fig


def time_chart(
    frame: pd.DataFrame,
    x: str,
    series: dict[str, str],
    deployments: pd.DataFrame,
    title: str = "",
    secondary: dict[str, str] | None = None,
) -> go.Figure:
    """Lines for `series` (column -> label) over `x`, optional right-axis series, deploy markers."""
    fig = go.Figure()
    for column, label in series.items():
        fig.add_trace(go.Scatter(x=frame[x], y=frame[column], name=label, mode="lines"))
    for column, label in (secondary or {}).items():
        fig.add_trace(
            go.Scatter(
                x=frame[x],
                y=frame[column],
                name=label,
                mode="lines",
                yaxis="y2",
                line={"dash": "dot"},
            )
        )
    layout = {
        "title": title,
        "height": 360,
        "margin": {"l": 10, "r": 10, "t": 40, "b": 10},
        "legend": {"orientation": "h", "y": -0.3},  # below the x axis' title
        "hovermode": "x unified",
    }
    layout["xaxis"] = {"title": {"text": "time (UTC)"}}
    if len(series) == 1:
        layout["yaxis"] = {"title": {"text": next(iter(series.values()))}}
    if secondary:
        layout["yaxis2"] = {
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "tickmode": "auto",  # round ticks of its own, not ticks synced to the left axis
            "rangemode": "tozero",
            "title": {"text": ", ".join(secondary.values())},
        }
    fig.update_layout(**layout)
    return add_deploy_markers(fig, deployments)
