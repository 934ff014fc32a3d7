"""Model features computed from transaction rows.

Training, evaluation, the workbench and live scoring build features with the
same two calls: :meth:`FeatureState.fit` learns the state that features need
from training rows, and :func:`build_features` turns any rows plus that
state into the feature matrix. Both are pure: they read only the DataFrame
they are given and do no I/O, so Spark, PostgreSQL and Streamlit code can
call them alike.

Features
--------
``amount``
    The transaction amount as a float.
``log_amount``
    ``log(1 + amount)``.
``amount_to_user_median``
    The amount divided by the user's median training amount. A user
    without training rows is compared with the median of all training
    amounts. Medians below :data:`MIN_MEDIAN_AMOUNT` are raised to it.
``device_freq``
    The share of training transactions made from the transaction's device,
    in [0, 1]. A device that never appeared in training gets 0.0.
``device_new``
    1.0 when the user has no earlier transaction from this device, else 0.0.
``location_change``
    1.0 when the home ``location`` differs from ``transaction_location``,
    else 0.0. The two are compared as exact strings.
``hour_of_day``
    The UTC hour of ``event_time``, from 0 to 23.
``velocity_10m``
    The user's number of transactions in the 10 minutes up to and including
    this one, so at least 1.
``country_change``
    1.0 when ``transaction_location`` differs from that of the user's
    previous transaction, else 0.0. A user's first transaction gets 0.0.

"Earlier" and "previous" mean earlier in ``event_time`` among the rows
passed plus the training rows summarised in the state. ``build_features``
therefore takes all of a user's recent rows at once: rows scored one by one
without their predecessors lose the velocity and device history between
them.

Feature sets
------------
:data:`FEATURE_SETS` names the selectable lists of features. ``seed_baseline``
is the first model's three features; :data:`DEFAULT_FEATURE_SET` adds the
user-history features.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from models import feature_inputs as inputs
from models import history

__all__ = [
    "DEFAULT_FEATURE_SET",
    "FEATURE_COLUMNS",
    "FEATURE_SETS",
    "INPUT_COLUMNS",
    "FeatureState",
    "build_features",
    "feature_names",
    "required_columns",
]

logger = logging.getLogger(__name__)

# The columns of shop.transactions that each feature reads.
FEATURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "amount": ("amount",),
    "log_amount": ("amount",),
    "amount_to_user_median": ("amount", "user_id"),
    "device_freq": ("device",),
    "device_new": ("user_id", "event_time", "device"),
    "location_change": ("location", "transaction_location"),
    "hour_of_day": ("event_time",),
    "velocity_10m": ("user_id", "event_time"),
    "country_change": ("user_id", "event_time", "transaction_location"),
}

SEED_BASELINE = ("amount", "device_freq", "location_change")
USER_HISTORY = (
    "log_amount",
    "amount_to_user_median",
    "device_freq",
    "device_new",
    "location_change",
    "hour_of_day",
    "velocity_10m",
    "country_change",
)
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "seed_baseline": SEED_BASELINE,
    "user_history": USER_HISTORY,
    "all": ("amount", *USER_HISTORY),
}
DEFAULT_FEATURE_SET = "user_history"

# Every column that some feature reads.
INPUT_COLUMNS: tuple[str, ...] = tuple(
    dict.fromkeys(column for columns in FEATURE_COLUMNS.values() for column in columns)
)

# Share given to a device that FeatureState.fit never saw. Zero keeps the
# feature's meaning: the device made none of the training transactions.
UNSEEN_DEVICE_FREQ = 0.0

# Floor of a median amount, in the amount's currency unit, so that a user
# whose median is 0 gets a finite amount_to_user_median.
MIN_MEDIAN_AMOUNT = 1.0

VELOCITY_WINDOW = pd.Timedelta(minutes=10)


def feature_names(feature_set: str) -> tuple[str, ...]:
    """Return the features of a named feature set.

    Raises
    ------
    ValueError
        When ``feature_set`` is not a key of :data:`FEATURE_SETS`.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(
            f"Unknown feature set {feature_set!r}. Choose one of {', '.join(FEATURE_SETS)}."
        )
    return FEATURE_SETS[feature_set]


def required_columns(feature_set: str) -> tuple[str, ...]:
    """Return the input columns that the features of ``feature_set`` read."""
    names = feature_names(feature_set)
    return tuple(column for column in INPUT_COLUMNS if any(column in FEATURE_COLUMNS[n] for n in names))


def _uses_users(feature_set: str) -> bool:
    return "user_id" in required_columns(feature_set)


@dataclass(frozen=True)
class FeatureState:
    """Values learned from training transactions that the features depend on.

    Build it with :meth:`FeatureState.fit`, store it with :meth:`to_dict` and
    restore it with :meth:`from_dict`. The dict form contains only JSON types,
    so a saved model does not depend on this class's module path.

    Attributes
    ----------
    feature_set : str
        Name of the feature set in :data:`FEATURE_SETS`.
    device_freq : dict of str to float
        Share of training transactions made from each device.
    n_rows : int
        Number of training transactions the state was fitted on.
    median_amount : float
        Median of all training amounts.
    user_median_amount : dict of str to float
        Median training amount of each user.
    history : dict of str to list
        The end of each user's training history, as columns of JSON values:
        ``device_user``/``device`` (every device each user used),
        ``last_user``/``last_time_ms``/``last_location`` (each user's last
        transaction) and ``recent_user``/``recent_time_ms`` (each user's
        transactions in the velocity window before their last one). Empty
        lists when the feature set reads no user history.
    """

    feature_set: str = "seed_baseline"
    device_freq: Mapping[str, float] = field(default_factory=dict)
    n_rows: int = 0
    median_amount: float = MIN_MEDIAN_AMOUNT
    user_median_amount: Mapping[str, float] = field(default_factory=dict)
    history: Mapping[str, list] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the features, in the column order of :func:`build_features`."""
        return feature_names(self.feature_set)

    @classmethod
    def fit(cls, df: pd.DataFrame, feature_set: str = DEFAULT_FEATURE_SET) -> FeatureState:
        """Learn device shares, user baselines and user history from training transactions.

        Parameters
        ----------
        df
            Training transactions with at least the columns
            :func:`required_columns` lists for ``feature_set``.
        feature_set
            A key of :data:`FEATURE_SETS`.

        Returns
        -------
        FeatureState
            A new state. ``df`` is not modified.

        Raises
        ------
        ValueError
            When ``feature_set`` is unknown, ``df`` has no rows, lacks a
            column or has a missing or invalid value in one.
        """
        columns = required_columns(feature_set)
        inputs.require_columns(df, columns)
        if len(df) == 0:
            raise ValueError(
                "Cannot fit the feature state on 0 transactions. Pass at least one row."
            )
        inputs.require_values(df, columns)

        shares = df["device"].astype(str).value_counts(normalize=True) if "device" in columns else {}
        device_freq = {str(device): float(share) for device, share in dict(shares).items()}
        state = cls(feature_set=feature_set, device_freq=device_freq, n_rows=len(df))
        if not _uses_users(feature_set):
            return state

        amounts = inputs.parse_amounts(df)
        users = df["user_id"].astype(str)
        medians = amounts.groupby(users.to_numpy()).median()
        state = replace(
            state,
            median_amount=float(amounts.median()),
            user_median_amount={str(user): float(value) for user, value in medians.items()},
            history=_fit_history(df, users),
        )
        logger.debug(
            "Fitted feature set %s on %d rows, %d devices, %d users",
            feature_set,
            len(df),
            len(device_freq),
            len(medians),
        )
        return state

    def without_history(self) -> FeatureState:
        """Return a copy whose users have no transactions before the rows passed.

        Training builds the features of its own rows from this copy, so each
        training row sees only the training rows before it.
        """
        return replace(self, history={})

    def to_dict(self) -> dict[str, Any]:
        """Return the state as a dict of JSON types, for saving with a model."""
        return {
            "feature_set": self.feature_set,
            "device_freq": dict(self.device_freq),
            "n_rows": self.n_rows,
            "median_amount": self.median_amount,
            "user_median_amount": dict(self.user_median_amount),
            "history": {key: list(values) for key, values in self.history.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureState:
        """Rebuild a state from the output of :meth:`to_dict`.

        Raises
        ------
        ValueError
            When a key is missing, the feature set is unknown or a share is
            outside [0, 1].
        """
        missing = [key for key in ("feature_set", "device_freq", "n_rows") if key not in data]
        if missing:
            raise ValueError(
                f"The saved feature state is missing the key(s) {', '.join(missing)}. "
                "Retrain the model to save a complete one."
            )
        feature_names(data["feature_set"])
        device_freq = {str(device): float(share) for device, share in data["device_freq"].items()}
        for device, share in device_freq.items():
            if not 0.0 <= share <= 1.0:
                raise ValueError(
                    f"The saved share of device {device!r} must be from 0 to 1, got {share!r}."
                )
        return cls(
            feature_set=str(data["feature_set"]),
            device_freq=device_freq,
            n_rows=int(data["n_rows"]),
            median_amount=float(data.get("median_amount", MIN_MEDIAN_AMOUNT)),
            user_median_amount=dict(data.get("user_median_amount", {})),
            history={key: list(values) for key, values in data.get("history", {}).items()},
        )


def _fit_history(df: pd.DataFrame, users: pd.Series) -> dict[str, list]:
    times = pd.Series(inputs.require_event_times(df), index=df.index)
    frame = pd.DataFrame(
        {
            "user": users.to_numpy(),
            "time_ms": times.to_numpy().astype(np.int64) // 1_000_000,
            "device": df["device"].astype(str).to_numpy(),
            "location": df["transaction_location"].astype(str).to_numpy(),
        }
    ).sort_values(["user", "time_ms"], kind="stable")

    pairs = frame.drop_duplicates(["user", "device"])
    last = frame.drop_duplicates("user", keep="last")
    last_time = frame["user"].map(last.set_index("user")["time_ms"])
    window_ms = int(VELOCITY_WINDOW / pd.Timedelta(milliseconds=1))
    recent = frame[frame["time_ms"] > last_time - window_ms]
    return {
        "device_user": pairs["user"].tolist(),
        "device": pairs["device"].tolist(),
        "last_user": last["user"].tolist(),
        "last_time_ms": [int(value) for value in last["time_ms"]],
        "last_location": last["location"].tolist(),
        "recent_user": recent["user"].tolist(),
        "recent_time_ms": [int(value) for value in recent["time_ms"]],
    }


def _history_array(state: FeatureState, key: str) -> np.ndarray:
    return np.asarray(state.history.get(key, []), dtype=object)


def _history_ms(state: FeatureState, key: str) -> np.ndarray:
    return np.asarray(state.history.get(key, []), dtype=np.int64)


# Columns compared as text. Columns in one group share codes, so equal
# codes mean equal text.
_TEXT_GROUPS = (("user_id",), ("device",), ("location", "transaction_location"))
_SEQUENCE_FEATURES = ("device_new", "velocity_10m", "country_change")


def build_features(df: pd.DataFrame, state: FeatureState) -> pd.DataFrame:
    """Compute the feature matrix of ``state.feature_set`` for transactions.

    Parameters
    ----------
    df
        Transactions with at least the columns :func:`required_columns`
        lists for the state's feature set. Other columns are ignored.
        ``amount`` may hold floats, ints, Decimals or numeric strings, and
        ``event_time`` datetimes or ISO 8601 strings (naive ones are UTC).
    state
        The state fitted on the training transactions.

    Returns
    -------
    pandas.DataFrame
        One float64 column per name in ``state.feature_names``, in that
        order, with the index of ``df``. No value is NaN: unseen devices
        and users get the values the module docstring defines. An empty
        ``df`` gives an empty matrix with the same columns.

    Raises
    ------
    ValueError
        When a column is missing, a value in one is missing, an amount is
        not a finite number or an event time is invalid. The message names
        the column and the first offending index.
    """
    names = state.feature_names
    columns = required_columns(state.feature_set)
    inputs.require_columns(df, columns)

    codes: dict[str, np.ndarray] = {}
    uniques: dict[str, pd.Index] = {}
    for group in _TEXT_GROUPS:
        present = [name for name in group if name in columns]
        if present:
            group_codes, group_uniques = inputs.factorize_text(df, present)
            for name, values in zip(present, group_codes):
                codes[name], uniques[name] = values, group_uniques
    parsed_times = inputs.parse_event_times(df) if "event_time" in columns else None

    # Missing values first, in column order. amount gets its own message,
    # which also covers non-numeric values.
    for name in columns:
        if name in codes:
            missing = codes[name] < 0
        elif name == "event_time":
            missing = inputs.find_missing_event_times(df, parsed_times)
        else:
            continue
        if missing.any():
            raise inputs.missing_value_error(df, name, missing)
    amount = inputs.parse_amounts(df).to_numpy() if "amount" in columns else None
    times = inputs.check_event_times(df, parsed_times) if parsed_times is not None else None

    sequence = None
    if any(name in _SEQUENCE_FEATURES for name in names):
        sequence = history.UserTimeOrder(codes["user_id"], uniques["user_id"], times)

    # Column-major, so each feature is written contiguously and the frame
    # uses the matrix as its one block without a copy.
    matrix = np.empty((len(df), len(names)), dtype=np.float64, order="F")
    for position, name in enumerate(names):
        if name == "amount":
            values = amount
        elif name == "log_amount":
            values = np.log1p(np.maximum(amount, 0.0))
        elif name == "amount_to_user_median":
            medians = pd.Series(state.user_median_amount, dtype="float64").reindex(uniques["user_id"])
            medians = medians.fillna(state.median_amount).to_numpy()
            values = amount / np.maximum(medians, MIN_MEDIAN_AMOUNT)[codes["user_id"]]
        elif name == "device_freq":
            shares = pd.Series(state.device_freq, dtype="float64").reindex(uniques["device"])
            values = shares.fillna(UNSEEN_DEVICE_FREQ).to_numpy()[codes["device"]]
        elif name == "device_new":
            values = sequence.is_new_pair(
                codes["device"],
                _history_array(state, "device_user"),
                uniques["device"].get_indexer(_history_array(state, "device")),
            )
        elif name == "location_change":
            values = codes["location"] != codes["transaction_location"]
        elif name == "hour_of_day":
            values = pd.DatetimeIndex(times).hour.to_numpy(dtype=np.float64)
        elif name == "velocity_10m":
            values = sequence.count_in_window(
                VELOCITY_WINDOW, _history_array(state, "recent_user"), _history_ms(state, "recent_time_ms")
            )
        elif name == "country_change":
            # A history location that no row has gets code -1, which differs
            # from every row's code, as its text differs from every row's text.
            location = codes["transaction_location"]
            previous, has_previous = sequence.previous(
                location,
                _history_array(state, "last_user"),
                _history_ms(state, "last_time_ms"),
                uniques["transaction_location"].get_indexer(_history_array(state, "last_location")),
            )
            values = has_previous & (previous != location)
        matrix[:, position] = values

    return pd.DataFrame(matrix, index=df.index, columns=list(names), copy=False)
