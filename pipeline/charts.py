"""Plotly figures of transaction data for the workbench pages.

Every function here is pure: it takes a DataFrame of transactions and
returns a :class:`plotly.graph_objects.Figure`, with no Streamlit and no I/O,
so tests can inspect the traces. Frauds and legitimate transactions have the
colours of :mod:`models.charts`.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from models.charts import FRAUD_COLOR, LEGITIMATE_COLOR

__all__ = ["history_figure"]


def history_figure(history: pd.DataFrame, transaction_id: str) -> go.Figure:
    """Draw the user's amounts over time, frauds in red, with this transaction as a star.

    Parameters
    ----------
    history
        Transactions of one user with ``event_time``, ``amount``, ``is_fraud``
        and ``transaction_id``, as :func:`pipeline.queue_detail.fetch_user_history`
        returns them, in any order.
    transaction_id
        The transaction to mark. The star trace is empty when it is not in ``history``.
    """
    ordered = history.sort_values("event_time")
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=ordered["event_time"], y=ordered["amount"], mode="lines", name="Amount",
            line={"color": "lightgrey"}, hoverinfo="skip",
        )
    )
    for value, name, color in ((0, "Legitimate (is_fraud = 0)", LEGITIMATE_COLOR), (1, "Fraud (is_fraud = 1)", FRAUD_COLOR)):
        part = ordered[ordered["is_fraud"] == value]
        figure.add_trace(
            go.Scatter(
                x=part["event_time"], y=part["amount"], mode="markers", name=name,
                marker={"color": color, "size": 8}, text=part["transaction_id"],
            )
        )
    this = ordered[ordered["transaction_id"] == transaction_id]
    figure.add_trace(
        go.Scatter(
            x=this["event_time"], y=this["amount"], mode="markers", name="This transaction",
            marker={"symbol": "star", "size": 18, "color": FRAUD_COLOR, "line": {"width": 1.5, "color": "black"}},
        )
    )
    figure.update_layout(
        title="Amount over time", xaxis_title="Event time (UTC)", yaxis_title="Amount",
        legend={"orientation": "h", "y": -0.25},
    )
    return figure
