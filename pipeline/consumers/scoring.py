"""Score a micro-batch partition with the production model, from the ledger's history.

The history features (velocity, new device, country change) of a
transaction depend on the user's earlier transactions. Offline, training
and evaluation see those in the DataFrame they are given. In the stream,
the earlier transactions are in ``shop.transactions``, so before scoring a
partition the consumer reads them into a :class:`LedgerHistory` (see
:mod:`pipeline.consumers.live_model`). Keeping this state in PostgreSQL,
never in a process's memory, lets any executor of a cluster score any
partition, and a restarted consumer score the same as before.

The rule that makes stream and offline features equal
------------------------------------------------------
A model's fitted state already summarises the users' transactions up to the
end of its training window, its *cutoff*. The ledger contributes only the
transactions after the cutoff:

* ``recent``: every transaction of the partition's users from ten minutes
  before the user's first transaction in the partition up to the user's
  last one. These go through :func:`models.features.build_features`
  together with the partition's rows, as they would in one offline call.
* ``last``: each user's latest transaction before that window, for
  ``country_change``.
* ``known_devices``: the (user, device) pairs of the partition that the
  user already used before that window, for ``device_new``.

Everything here is pure: it reads the DataFrames it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from models.artifact import feature_state, flag
from models.features import INPUT_COLUMNS, VELOCITY_WINDOW, FeatureState, build_features, required_columns

__all__ = [
    "LedgerHistory",
    "ScoredRows",
    "TOP_CONTRIBUTIONS",
    "history_bounds",
    "history_cutoff",
    "score_rows",
    "top_contributions",
]

# How many SHAP contributions each fraud-table row keeps.
TOP_CONTRIBUTIONS = 5

# The keys of FeatureState.history, documented there.
HISTORY_KEYS = (
    "device_user",
    "device",
    "last_user",
    "last_time_ms",
    "last_location",
    "recent_user",
    "recent_time_ms",
)


@dataclass(frozen=True)
class LedgerHistory:
    """The stored transactions that the features of a partition's rows depend on.

    Attributes
    ----------
    recent : pandas.DataFrame
        Stored transactions with the columns of
        :data:`models.features.INPUT_COLUMNS`, in the order they were stored.
    last : pandas.DataFrame
        Columns ``user_id``, ``event_time`` and ``transaction_location``: the
        latest stored transaction of a user before ``recent`` begins.
    known_devices : pandas.DataFrame
        Columns ``user_id`` and ``device``: pairs used before ``recent`` begins.
    """

    recent: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(INPUT_COLUMNS)))
    last: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["user_id", "event_time", "transaction_location"])
    )
    known_devices: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["user_id", "device"]))


@dataclass(frozen=True)
class ScoredRows:
    """Scores of a partition's rows, in the order of the rows.

    Attributes
    ----------
    fraud_score : numpy.ndarray
        float64, higher means more suspicious (see :mod:`models.artifact`).
    flagged : numpy.ndarray
        bool, ``fraud_score > threshold``.
    """

    fraud_score: np.ndarray
    flagged: np.ndarray


def history_cutoff(artifact: Mapping[str, Any]) -> datetime | None:
    """Return the end of the model's training window: history up to it is in the model.

    Returns None when the model's feature set reads no ``user_id``, so the
    ledger is not read at all. Returns the epoch when the model recorded no
    training window, so every stored transaction counts.
    """
    if "user_id" not in required_columns(artifact["feature_set"]):
        return None
    window = artifact.get("training_window") or {}
    end = window.get("end") if isinstance(window, Mapping) else None
    if not end:
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    end = pd.Timestamp(end)
    if end.tzinfo is None:
        end = end.tz_localize("UTC")
    return end.tz_convert("UTC").to_pydatetime()


def history_bounds(rows: pd.DataFrame) -> pd.DataFrame:
    """Return, for each user of ``rows``, the stored-history window to read.

    Columns ``user_id``, ``since`` (ten minutes before the user's first
    row, exclusive) and ``until`` (the user's last row, inclusive), both UTC
    datetimes.
    """
    times = pd.to_datetime(rows["event_time"], utc=True)
    grouped = times.groupby(rows["user_id"].astype(str).to_numpy())
    bounds = pd.DataFrame({"since": grouped.min() - VELOCITY_WINDOW, "until": grouped.max()})
    return bounds.rename_axis("user_id").reset_index()


def _extended_state(state: FeatureState, ledger: LedgerHistory) -> FeatureState:
    """Add the ledger's last transactions and known devices to the state's history."""
    history = {key: list(state.history.get(key, [])) for key in HISTORY_KEYS}
    history["device_user"] += ledger.known_devices["user_id"].astype(str).tolist()
    history["device"] += ledger.known_devices["device"].astype(str).tolist()
    last_times = pd.to_datetime(ledger.last["event_time"], utc=True)
    history["last_user"] += ledger.last["user_id"].astype(str).tolist()
    history["last_time_ms"] += [int(value) // 1_000_000 for value in last_times.astype("int64")]
    history["last_location"] += ledger.last["transaction_location"].astype(str).tolist()
    return replace(state, history=history)


def score_rows(
    rows: pd.DataFrame,
    artifact: Mapping[str, Any],
    ledger: LedgerHistory | None = None,
    state: FeatureState | None = None,
) -> tuple[ScoredRows, pd.DataFrame]:
    """Score ``rows`` with ``artifact``, counting ``ledger`` as their users' earlier transactions.

    Parameters
    ----------
    rows
        The partition's valid transactions, with the columns of
        :data:`models.features.INPUT_COLUMNS`.
    artifact
        A model dict of :mod:`models.artifact`.
    ledger
        The stored history of the rows' users after the model's cutoff.
        None or empty for a model without user features.
    state
        ``models.artifact.feature_state(artifact)``, which a caller scoring
        many partitions restores once; restored here when None.

    Returns
    -------
    tuple
        The :class:`ScoredRows` and the feature matrix of ``rows`` (index
        of ``rows``), which :func:`top_contributions` explains.
    """
    ledger = ledger or LedgerHistory()
    state = state if state is not None else feature_state(artifact)
    if len(ledger.recent) or len(ledger.last) or len(ledger.known_devices):
        state = _extended_state(state, ledger)

    columns = list(INPUT_COLUMNS)
    recent = ledger.recent.loc[:, columns].reset_index(drop=True)
    own = rows.loc[:, columns].reset_index(drop=True)
    # Stored rows first: at equal event times they came earlier.
    combined = pd.concat([recent, own], ignore_index=True) if len(recent) else own
    features = build_features(combined, state).iloc[len(recent):]
    features.index = rows.index

    scores = -artifact["estimator"].score_samples(features)
    return ScoredRows(scores, flag(scores, float(artifact["threshold"]))), features


def top_contributions(
    contributions: pd.DataFrame, features: pd.DataFrame, count: int = TOP_CONTRIBUTIONS
) -> list[list[dict[str, float | str]]]:
    """Return each row's ``count`` largest SHAP contributions by size, largest first.

    Parameters
    ----------
    contributions
        SHAP values in ``fraud_score`` units, one column per feature, as in
        :class:`models.explain.Explanation`.
    features
        The feature values, same index and columns.

    Returns
    -------
    list
        One list per row of ``{"feature", "value", "contribution"}`` dicts,
        JSON-ready floats.
    """
    names: Sequence[str] = list(contributions.columns)
    values = contributions.to_numpy(dtype=np.float64)
    inputs = features.loc[:, names].to_numpy(dtype=np.float64)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :count]
    result = []
    for row, positions in enumerate(order):
        result.append(
            [
                {
                    "feature": names[position],
                    "value": float(inputs[row, position]),
                    "contribution": float(values[row, position]),
                }
                for position in positions
            ]
        )
    return result
