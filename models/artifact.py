"""Saved Isolation Forest models: the model file format, saving, loading and fraud scores.

This module imports no training or database code, so live scoring can load
a model file and score transactions without them. :mod:`models.train` fits
the models and writes the files.

Score convention
----------------
``fraud_score = -IsolationForest.score_samples(X)``, so a higher
``fraud_score`` means a more suspicious transaction. The estimator flags a
transaction as an outlier when ``fraud_score > -estimator.offset_``. The
model file stores that cut-off as ``threshold``.

Model file
----------
:func:`save_artifact` writes each model to a new joblib file named
``isolation_forest_<UTC time>_<8 hex digits>.joblib``. The file contains a
dict with the keys of :data:`ARTIFACT_KEYS`: ``estimator``, ``feature_state``
(the output of :meth:`models.features.FeatureState.to_dict`),
``feature_names``, ``threshold``, ``params``, ``metrics``, ``rows``,
``sklearn_version``, ``trained_at`` (ISO 8601, UTC) and ``format_version``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from models.features import FEATURE_NAMES, FeatureState, build_features

__all__ = ["ARTIFACT_KEYS", "FORMAT_VERSION", "fraud_score", "load_artifact", "save_artifact"]

FORMAT_VERSION = 1
ARTIFACT_KEYS: tuple[str, ...] = (
    "estimator",
    "feature_state",
    "feature_names",
    "threshold",
    "params",
    "metrics",
    "rows",
    "sklearn_version",
    "trained_at",
    "format_version",
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
        When the model was trained on other features than this code builds,
        or when ``df`` is invalid for :func:`models.features.build_features`.
    """
    if list(artifact["feature_names"]) != list(FEATURE_NAMES):
        raise ValueError(
            f"The model was trained on the features {', '.join(artifact['feature_names'])}, "
            f"but this code builds {', '.join(FEATURE_NAMES)}. Train a new model."
        )
    state = FeatureState.from_dict(artifact["feature_state"])
    features = build_features(df, state)
    return -artifact["estimator"].score_samples(features)


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


def load_artifact(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a model file written by :func:`save_artifact`.

    Raises
    ------
    ValueError
        When the file does not contain a model dict with every key of
        :data:`ARTIFACT_KEYS`.
    """
    # NOTE: joblib files are pickles, and loading one runs code it contains.
    # Load model files only from a folder that this workbench writes.
    artifact = joblib.load(path)
    if not isinstance(artifact, dict):
        raise ValueError(f"{path} does not contain a model dict, got {type(artifact).__name__}.")
    missing = [key for key in ARTIFACT_KEYS if key not in artifact]
    if missing:
        raise ValueError(
            f"{path} is missing the key(s) {', '.join(missing)}. Train a new model."
        )
    return artifact
