"""Validated training parameters: the Isolation Forest's and the data selection's."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from models.features import DEFAULT_FEATURE_SET, FEATURE_SETS

__all__ = ["MAX_LIMIT", "MAX_N_ESTIMATORS", "MAX_RANDOM_STATE", "TrainingError", "TrainingParams", "as_params"]

# Upper bounds that keep one request from the Model page from running for
# hours or filling memory, because every row read becomes a pandas row.
MAX_N_ESTIMATORS = 10_000
MAX_LIMIT = 10_000_000
MAX_RANDOM_STATE = 2**32 - 1
MAX_HOLDOUT = 0.9


class TrainingError(ValueError):
    """Error raised when training cannot run, with the cause and the next step in its message."""


@dataclasses.dataclass(frozen=True)
class TrainingParams:
    """Validated training parameters.

    Parameters
    ----------
    n_estimators
        Number of trees, from 1 to :data:`MAX_N_ESTIMATORS`.
    contamination
        ``"auto"`` or the expected share of fraud, in (0, 0.5]. It sets the
        ``threshold`` that decides which transactions are flagged.
    random_state
        Seed of the estimator, from 0 to 2**32 - 1, or None for a random one.
    max_samples
        Rows drawn for each tree: ``"auto"`` (min(256, rows)), an int of at
        least 1, or a float in (0, 1] as a share of the rows.
    max_features
        Features drawn for each tree: an int of at least 1 (at most the
        number of features) or a float in (0, 1] as a share of them.
    bootstrap
        Draw each tree's rows with replacement.
    feature_set
        A key of :data:`models.features.FEATURE_SETS`.
    novelty
        Fit only on training rows with ``is_fraud = 0`` (novelty detection).
        The hold-out keeps every row.
    holdout
        Share of the rows, the latest in ``event_time``, kept out of fitting
        for evaluation, in [0, 0.9]. 0 evaluates on the training rows.
    limit
        Number of newest transactions to read, from 1 to :data:`MAX_LIMIT`.
    start, end
        Optional UTC time window of the transactions to read, as ISO 8601
        strings: ``start <= event_time < end``.

    Raises
    ------
    TrainingError
        When a value is invalid. The message names the parameter, the allowed
        values and the value received.
    """

    n_estimators: int = 100
    contamination: float | str = 0.1
    random_state: int | None = 42
    max_samples: int | float | str = "auto"
    max_features: int | float = 1.0
    bootstrap: bool = False
    feature_set: str = DEFAULT_FEATURE_SET
    novelty: bool = False
    holdout: float = 0.2
    limit: int = 200_000
    start: str | None = None
    end: str | None = None

    def __post_init__(self) -> None:
        _check_int("n_estimators", self.n_estimators, 1, MAX_N_ESTIMATORS)
        _check_int("limit", self.limit, 1, MAX_LIMIT)
        if self.random_state is not None:
            _check_int("random_state", self.random_state, 0, MAX_RANDOM_STATE)

        contamination = self.contamination
        if contamination != "auto" and not (
            _is_real(contamination) and 0.0 < float(contamination) <= 0.5
        ):
            raise TrainingError(
                f"contamination must be 'auto' or a number in (0, 0.5], got {contamination!r}."
            )

        max_samples = self.max_samples
        valid_max_samples = (
            max_samples == "auto"
            or (_is_int(max_samples) and max_samples >= 1)
            or (_is_real(max_samples) and not _is_int(max_samples) and 0.0 < max_samples <= 1.0)
        )
        if not valid_max_samples:
            raise TrainingError(
                "max_samples must be 'auto', a whole number of at least 1 or a number "
                f"in (0, 1], got {max_samples!r}."
            )

        max_features = self.max_features
        n_features = len(FEATURE_SETS.get(self.feature_set, ()))
        valid_max_features = (_is_int(max_features) and 1 <= max_features <= max(n_features, 1)) or (
            _is_real(max_features) and not _is_int(max_features) and 0.0 < max_features <= 1.0
        )
        if not valid_max_features:
            raise TrainingError(
                f"max_features must be a whole number from 1 to {n_features} (the features of "
                f"{self.feature_set}) or a number in (0, 1], got {max_features!r}."
            )

        for name in ("bootstrap", "novelty"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TrainingError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if self.feature_set not in FEATURE_SETS:
            raise TrainingError(
                f"feature_set must be one of {', '.join(FEATURE_SETS)}, got {self.feature_set!r}."
            )
        if not (_is_real(self.holdout) and 0.0 <= self.holdout <= MAX_HOLDOUT):
            raise TrainingError(f"holdout must be a number in [0, {MAX_HOLDOUT}], got {self.holdout!r}.")

        start, end = _time("start", self.start), _time("end", self.end)
        if start is not None and end is not None and start >= end:
            raise TrainingError(f"start must be before end, got start {self.start} and end {self.end}.")

    def estimator_params(self) -> dict[str, Any]:
        """Return the keyword arguments of :class:`~sklearn.ensemble.IsolationForest`."""
        return {
            "n_estimators": self.n_estimators,
            "contamination": self.contamination,
            "random_state": self.random_state,
            "max_samples": self.max_samples,
            "max_features": self.max_features,
            "bootstrap": bool(self.bootstrap),
        }


def _time(name: str, value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = pd.Timestamp(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or pd.isna(parsed):
        raise TrainingError(
            f"{name} must be an ISO 8601 time such as 2026-01-31T00:00:00Z, got {value!r}."
        )
    if parsed.tzinfo is None:
        parsed = parsed.tz_localize("UTC")
    return parsed.to_pydatetime()


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not _is_int(value) or not low <= value <= high:
        raise TrainingError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")


def as_params(params: TrainingParams | Mapping[str, Any]) -> TrainingParams:
    """Return ``params`` as :class:`TrainingParams`, building it from a mapping of its fields.

    Raises
    ------
    TrainingError
        When a key is unknown or a value invalid.
    """
    if isinstance(params, TrainingParams):
        return params
    known = [item.name for item in dataclasses.fields(TrainingParams)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TrainingError(
            f"Unknown training parameter(s) {', '.join(unknown)}. "
            f"Known ones are {', '.join(known)}."
        )
    return TrainingParams(**params)
