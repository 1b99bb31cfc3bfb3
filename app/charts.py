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


def add_deploy_markers(fig: go.Figure, deployments: pd.DataFrame) -> go.Figure:
    """A dashed vertical line per deployment (red for rollbacks), labelled with the release."""
    for row in deployments.itertuples():
        color = "#d62728" if row.is_rollback else "#7f7f7f"
        fig.add_vline(x=row.created_at, line_dash="dash", line_color=color, line_width=1)
        fig.add_annotation(
            x=row.created_at,
            y=1,
            yref="paper",
            text=row.release,
            showarrow=False,
            textangle=-90,
            xanchor="left",
            yanchor="top",
            font={"size": 9, "color": color},
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
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "x unified",
    }
    if secondary:
        layout["yaxis2"] = {"overlaying": "y", "side": "right", "showgrid": False}
    fig.update_layout(**layout)
    return add_deploy_markers(fig, deployments)
