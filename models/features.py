"""Model features computed from transaction rows.

Training and live scoring build features with the same two calls:
:meth:`FeatureState.fit` learns the state that features need from training
rows, and :func:`build_features` turns any rows plus that state into the
feature matrix. Both are pure: they read only the DataFrame they are given
and do no I/O, so Spark, PostgreSQL and Streamlit code can call them alike.

The features, in the order of :data:`FEATURE_NAMES`:

``amount``
    The transaction amount as a float.
``device_freq``
    The share of training transactions made from the transaction's device,
    in [0, 1]. A device that never appeared in training gets 0.0.
``location_change``
    1.0 when the home ``location`` differs from ``transaction_location``,
    else 0.0. The two are compared as exact strings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FEATURE_NAMES", "INPUT_COLUMNS", "FeatureState", "build_features"]

logger = logging.getLogger(__name__)

FEATURE_NAMES: tuple[str, ...] = ("amount", "device_freq", "location_change")

# Columns of shop.transactions that build_features reads.
INPUT_COLUMNS: tuple[str, ...] = ("amount", "device", "location", "transaction_location")

# Share given to a device that FeatureState.fit never saw. Zero keeps the
# feature's meaning: the device made none of the training transactions.
UNSEEN_DEVICE_FREQ = 0.0


def _show(value: Any) -> str:
    # repr() of a numpy scalar reads np.int64(7), so unwrap it first.
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _require_columns(df: pd.DataFrame) -> None:
    missing = [name for name in INPUT_COLUMNS if name not in df.columns]
    if missing:
        raise ValueError(
            f"The transactions are missing the column(s) {', '.join(missing)}. "
            f"The features need the columns {', '.join(INPUT_COLUMNS)}."
        )


def _require_values(df: pd.DataFrame, columns: Iterable[str]) -> None:
    for name in columns:
        nulls = int(df[name].isna().sum())
        if nulls:
            first = df.index[df[name].isna()][0]
            raise ValueError(
                f"Column {name} has {nulls} missing value(s), the first at index {_show(first)}. "
                "Every transaction needs a value there."
            )


def _amounts(df: pd.DataFrame) -> pd.Series:
    # PostgreSQL numeric columns arrive as Decimal objects, so convert
    # explicitly instead of trusting the column dtype.
    amounts = pd.to_numeric(df["amount"], errors="coerce").astype("float64")
    invalid = np.flatnonzero(~np.isfinite(amounts.to_numpy()))
    if invalid.size:
        position = invalid[0]
        raise ValueError(
            f"Column amount must contain finite numbers, got {_show(df['amount'].iloc[position])} "
            f"at index {_show(df.index[position])} ({invalid.size} invalid value(s) in all)."
        )
    return amounts


@dataclass(frozen=True)
class FeatureState:
    """Values learned from training transactions that the features depend on.

    Build it with :meth:`FeatureState.fit`, store it with :meth:`to_dict` and
    restore it with :meth:`from_dict`. The dict form contains only JSON types,
    so a saved model does not depend on this class's module path.

    Attributes
    ----------
    device_freq : dict of str to float
        Share of training transactions made from each device. The shares are
        in (0, 1] and sum to 1.
    n_rows : int
        Number of training transactions the shares were computed from.
    """

    device_freq: Mapping[str, float] = field(default_factory=dict)
    n_rows: int = 0

    @classmethod
    def fit(cls, df: pd.DataFrame) -> FeatureState:
        """Learn the device shares from training transactions.

        Parameters
        ----------
        df
            Training transactions with at least the columns of
            :data:`INPUT_COLUMNS`.

        Returns
        -------
        FeatureState
            A new state. ``df`` is not modified.

        Raises
        ------
        ValueError
            When ``df`` has no rows, lacks a column of :data:`INPUT_COLUMNS`
            or has a missing ``device``.
        """
        _require_columns(df)
        if len(df) == 0:
            raise ValueError(
                "Cannot fit the feature state on 0 transactions. Pass at least one row."
            )
        _require_values(df, ["device"])

        shares = df["device"].astype(str).value_counts(normalize=True)
        device_freq = {str(device): float(share) for device, share in shares.items()}
        logger.debug("Fitted device_freq on %d rows, %d devices", len(df), len(device_freq))
        return cls(device_freq=device_freq, n_rows=len(df))

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a dict of JSON types, for saving with a model."""
        return {"device_freq": dict(self.device_freq), "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureState:
        """Rebuild a state from the output of :meth:`to_dict`.

        Raises
        ------
        ValueError
            When a key is missing or a share is outside [0, 1].
        """
        missing = [key for key in ("device_freq", "n_rows") if key not in data]
        if missing:
            raise ValueError(
                f"The saved feature state is missing the key(s) {', '.join(missing)}. "
                "Retrain the model to save a complete one."
            )
        device_freq = {str(device): float(share) for device, share in data["device_freq"].items()}
        for device, share in device_freq.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(
                    f"The saved share of device {device!r} must be from 0 to 1, got {share!r}."
                )
        return cls(device_freq=device_freq, n_rows=int(data["n_rows"]))


def build_features(df: pd.DataFrame, state: FeatureState) -> pd.DataFrame:
    """Compute the feature matrix for transactions.

    Parameters
    ----------
    df
        Transactions with at least the columns of :data:`INPUT_COLUMNS`.
        Other columns are ignored. ``amount`` may hold floats, ints, Decimals
        or numeric strings.
    state
        The state fitted on the training transactions.

    Returns
    -------
    pandas.DataFrame
        One float64 column per name in :data:`FEATURE_NAMES`, in that order,
        with the index of ``df``. An empty ``df`` gives an empty matrix with
        the same columns.

    Raises
    ------
    ValueError
        When a column is missing, a device or location is missing, or an
        amount is not a finite number. The message names the column and the
        first offending index.
    """
    _require_columns(df)
    _require_values(df, ["device", "location", "transaction_location"])

    amount = _amounts(df)
    shares = pd.Series(state.device_freq, dtype="float64")
    device_freq = shares.reindex(df["device"].astype(str)).fillna(UNSEEN_DEVICE_FREQ).to_numpy()
    location_change = (
        df["location"].astype(str) != df["transaction_location"].astype(str)
    ).astype("float64")

    features = pd.DataFrame(
        {"amount": amount, "device_freq": device_freq, "location_change": location_change},
        index=df.index,
    )
    return features.loc[:, list(FEATURE_NAMES)]
