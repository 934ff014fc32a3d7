"""Saved Isolation Forest models: the model file format, saving, loading and fraud scores.

This module imports no training or database code, so live scoring can load
a model file and score transactions without them. :mod:`models.train` fits
the models and writes the files.

Score convention
----------------
``fraud_score = -IsolationForest.score_samples(X)``, so a higher
``fraud_score`` means a more suspicious transaction. It lies in (0, 1]:
``fraud_score = 2 ** (-E[h(x)] / c(max_samples_))``, where ``E[h(x)]`` is the
mean path length of ``x`` over the trees and ``c`` the average path length
of an unsuccessful search in a binary search tree. A transaction is flagged
(predicted fraud) exactly when ``fraud_score > threshold``, which
:func:`flag` implements. The model file stores the estimator's own cut-off,
``-estimator.offset_``, as ``threshold``, so :func:`flag` agrees with
``estimator.predict(X) == -1``. Every table, chart and command of the
workbench uses this score and this rule.

Model file
----------
:func:`save_artifact` writes each model to a new joblib file named
``isolation_forest_<UTC time>_<8 hex digits>.joblib``. The file contains a
dict with the keys of :data:`ARTIFACT_KEYS`: ``estimator``, ``feature_state``
(the output of :meth:`models.features.FeatureState.to_dict`),
``feature_set``, ``feature_names``, ``threshold``, ``score_quantiles`` (the
training scores at :data:`QUANTILE_LEVELS`, for threshold tuning without
the training rows), ``params``, ``metrics``, ``rows``, ``training_window``
(ISO 8601 ``start`` and ``end`` of the training rows, or None),
``sklearn_version``, ``trained_at`` (ISO 8601, UTC) and ``format_version``.

A model saved by another scikit-learn version, or in another format, is not
loaded: :class:`IncompatibleModelError` says so and asks for retraining,
because unpickled trees of another version may score differently.
"""

from __future__ import annotations

import io
import os
import uuid
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.exceptions import InconsistentVersionWarning

from models.features import FeatureState, build_features

__all__ = [
    "ARTIFACT_KEYS",
    "model_features",
    "FORMAT_VERSION",
    "QUANTILE_LEVELS",
    "IncompatibleModelError",
    "artifact_from_bytes",
    "artifact_to_bytes",
    "check_compatible",
    "feature_state",
    "flag",
    "fraud_score",
    "load_artifact",
    "save_artifact",
    "threshold_for_contamination",
]

FORMAT_VERSION = 2
ARTIFACT_KEYS: tuple[str, ...] = (
    "estimator",
    "feature_state",
    "feature_set",
    "feature_names",
    "threshold",
    "score_quantiles",
    "params",
    "metrics",
    "rows",
    "training_window",
    "sklearn_version",
    "trained_at",
    "format_version",
)

# Levels at which the training fraud_score distribution is stored: every
# 0.01 %, so a contamination of 0.001 maps to a threshold between two
# stored points at most 0.0001 apart.
QUANTILE_LEVELS = np.linspace(0.0, 1.0, 10_001)

RETRAIN_HINT = "Retrain the model with `python -m models.train` or the Train button of the Model page."


class IncompatibleModelError(ValueError):
    """Error raised for a model that this code cannot score correctly, with the fix in its message."""


def flag(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Return True where a transaction is flagged: ``fraud_score > threshold``."""
    return np.asarray(scores) > threshold


def threshold_for_contamination(score_quantiles: np.ndarray, contamination: float) -> float:
    """Return the threshold that flags a ``contamination`` share of the training rows.

    It matches scikit-learn's own rule (``offset_`` is the ``contamination``
    percentile of ``score_samples`` on the training rows) up to the
    interpolation between the stored quantiles.

    Raises
    ------
    ValueError
        When ``contamination`` is outside (0, 0.5].
    """
    if not 0.0 < contamination <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination!r}.")
    return float(np.interp(1.0 - contamination, QUANTILE_LEVELS, np.asarray(score_quantiles)))


def check_compatible(artifact: Mapping[str, Any]) -> None:
    """Raise :class:`IncompatibleModelError` unless this code can score with ``artifact``."""
    if artifact.get("format_version") != FORMAT_VERSION:
        raise IncompatibleModelError(
            f"The model file has format version {artifact.get('format_version')!r}, "
            f"but this code reads version {FORMAT_VERSION}. {RETRAIN_HINT}"
        )
    if artifact.get("sklearn_version") != sklearn.__version__:
        raise IncompatibleModelError(
            f"The model was saved with scikit-learn {artifact.get('sklearn_version')}, but "
            f"scikit-learn {sklearn.__version__} is installed, and its trees may score "
            f"differently. {RETRAIN_HINT}"
        )


def fraud_score(artifact: Mapping[str, Any], df: pd.DataFrame) -> np.ndarray:
    """Compute the fraud score of each transaction with a trained model.

    Parameters
    ----------
    artifact
        The content of a model file, from :func:`models.train.fit_and_evaluate`
        or :func:`load_artifact`.
    df
        Transactions with the columns of :data:`models.features.INPUT_COLUMNS`.

    Returns
    -------
    numpy.ndarray
        One ``fraud_score`` per row, as the score convention above defines it.

    Raises
    ------
    ValueError
        When the model was trained on other features than this code builds
        for its feature set, or when ``df`` is invalid for
        :func:`models.features.build_features`.
    """
    return -artifact["estimator"].score_samples(model_features(artifact, df))


def model_features(artifact: Mapping[str, Any], df: pd.DataFrame) -> pd.DataFrame:
    """Build the feature matrix that ``artifact``'s estimator takes, from its saved state.

    Raises
    ------
    ValueError
        As :func:`fraud_score`.
    """
    return build_features(df, feature_state(artifact))


def feature_state(artifact: Mapping[str, Any]) -> FeatureState:
    """Restore the fitted feature state of ``artifact``, checked against its estimator's features.

    Raises
    ------
    IncompatibleModelError
        When the model was trained on other features than this code builds
        for its feature set.
    """
    state = FeatureState.from_dict(artifact["feature_state"])
    if list(artifact["feature_names"]) != list(state.feature_names):
        raise IncompatibleModelError(
            f"The model was trained on the features {', '.join(artifact['feature_names'])}, "
            f"but this code builds {', '.join(state.feature_names)} for the feature set "
            f"{state.feature_set}. {RETRAIN_HINT}"
        )
    return state


def save_artifact(artifact: Mapping[str, Any], output_dir: str | os.PathLike[str]) -> Path:
    """Write ``artifact`` to a new file in ``output_dir`` and return its path.

    The name contains the UTC time and a random suffix, so each call creates a
    new file. The content goes to a hidden temporary file first, which is then
    hard-linked to the final name, so no reader sees half a model. A link
    fails instead of replacing an existing file.

    Raises
    ------
    OSError
        When the folder cannot be created or written.
    """
    folder = Path(output_dir)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"isolation_forest_{stamp}_{uuid.uuid4().hex[:8]}.joblib"
    temporary = folder / f".{path.name}.tmp"
    folder.mkdir(parents=True, exist_ok=True)

    try:
        joblib.dump(dict(artifact), temporary)
        # NOTE: os.link fails on file systems without hard links (FAT, some
        # network shares), so saving there raises OSError.
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def artifact_to_bytes(artifact: Mapping[str, Any]) -> bytes:
    """Serialise ``artifact`` with joblib, for storing in the model registry."""
    buffer = io.BytesIO()
    joblib.dump(dict(artifact), buffer)
    return buffer.getvalue()


def artifact_from_bytes(data: bytes, source: str = "the model registry") -> dict[str, Any]:
    """Read a model serialised by :func:`artifact_to_bytes` and check it as :func:`load_artifact` does."""
    return _load(io.BytesIO(data), source)


def load_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model file written by :func:`save_artifact`.

    Raises
    ------
    ValueError
        When the file does not contain a model dict with every key of
        :data:`ARTIFACT_KEYS`.
    IncompatibleModelError
        When the model was saved by another scikit-learn version or in
        another format version.
    """
    return _load(path, str(path))


def _load(source: Any, name: str) -> dict[str, Any]:
    # NOTE: joblib files are pickles, and loading one runs code it contains.
    # Load model files only from a folder or database that this workbench writes.
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            artifact = joblib.load(source)
        except InconsistentVersionWarning as exc:
            raise IncompatibleModelError(
                f"{name} contains a model saved with scikit-learn {exc.original_sklearn_version}, "
                f"but scikit-learn {exc.current_sklearn_version} is installed, and its trees "
                f"may score differently. {RETRAIN_HINT}"
            ) from exc
    if not isinstance(artifact, dict):
        raise ValueError(f"{name} does not contain a model dict, got {type(artifact).__name__}.")
    check_compatible(artifact)
    missing = [key for key in ARTIFACT_KEYS if key not in artifact]
    if missing:
        raise ValueError(f"{name} is missing the key(s) {', '.join(missing)}. {RETRAIN_HINT}")
    return artifact
