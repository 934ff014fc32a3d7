"""SHAP explanations of fraud scores, additive in ``fraud_score`` units.

:class:`shap.TreeExplainer` (shap 0.51) explains an Isolation Forest's mean
path length ``E[h(x)]`` over its trees, exactly and additively: ``E[h(x)] =
phi_0 + sum_j phi_j(x)``, where ``phi_0`` is the forest's expected path
length over its training samples. The model's score is a nonlinear function
of it, ``fraud_score = f(E[h]) = 2 ** (-E[h] / c(max_samples_))`` (see
:mod:`models.artifact`), so the path-length values are converted here.

What the numbers mean
---------------------
``base_value`` is ``f(phi_0)``: the fraud score of a transaction with the
expected path length. Each contribution is ``phi_j(x) * s(x)``, where
``s(x) = (fraud_score(x) - base_value) / (E[h(x)] - phi_0)`` is the slope of
``f`` between the base and the transaction (its derivative where the two
path lengths are equal). Every contribution therefore keeps the sign and the
relative size of its SHAP value in path length, with a shorter path (more
isolated) giving a positive contribution, and ``base_value + sum of
contributions == fraud_score(x)`` for every row. Float rounding left over
after the conversion (below 1e-12 in tests) is spread over the features in
proportion to ``|phi_j|``.

Usage::

    python -m models.explain --transaction-id ID [--version V]

prints one JSON object as its last line: ``version``, ``transaction_id``,
``fraud_score``, ``threshold``, ``flagged``, ``base_value`` and the
``contributions`` and ``features`` of each feature.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble._iforest import _average_path_length

from models.artifact import model_features
from models.features import required_columns

__all__ = ["Explanation", "ModelExplainer", "explain_transaction", "history_since"]

# Below this path-length difference the secant slope is replaced by the
# derivative, since the division would only amplify rounding.
_MIN_PATH_DIFFERENCE = 1e-9


@dataclasses.dataclass(frozen=True)
class Explanation:
    """SHAP explanation of rows, in ``fraud_score`` units.

    Attributes
    ----------
    base_value : float
        ``f(phi_0)``, the fraud score of the expected path length.
    contributions : pandas.DataFrame
        One column per feature; each row sums to ``fraud_score - base_value``.
    features : pandas.DataFrame
        The feature values that were explained.
    fraud_score : numpy.ndarray
        The model's fraud score of each row.
    path_length_values : pandas.DataFrame
        The raw SHAP values in path-length units.
    """

    base_value: float
    contributions: pd.DataFrame
    features: pd.DataFrame
    fraud_score: np.ndarray
    path_length_values: pd.DataFrame


class ModelExplainer:
    """A cached :class:`shap.TreeExplainer` for one model artifact.

    Building it takes about as long as scoring a few thousand rows; keep one
    per model (the Model page caches it with ``st.cache_resource``). Each
    :meth:`explain` call afterwards costs milliseconds for a few rows.

    Parameters
    ----------
    artifact
        A model dict of :mod:`models.artifact`.
    """

    def __init__(self, artifact: Mapping[str, Any]) -> None:
        import shap  # Imported here because it takes seconds and only explaining needs it.

        self.artifact = artifact
        estimator = artifact["estimator"]
        self.normaliser_ = float(_average_path_length([estimator.max_samples_])[0])
        with warnings.catch_warnings():
            # shap warns about feature names it does not use.
            warnings.simplefilter("ignore", UserWarning)
            self.explainer_ = shap.TreeExplainer(estimator)
        self.expected_path_length_ = float(np.ravel(self.explainer_.expected_value)[0])
        self.base_value_ = float(self._score(np.array([self.expected_path_length_]))[0])

    def _score(self, path_length: np.ndarray) -> np.ndarray:
        return np.power(2.0, -path_length / self.normaliser_)

    def explain_features(self, features: pd.DataFrame) -> Explanation:
        """Explain rows of an already built feature matrix."""
        estimator = self.artifact["estimator"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            phi = np.asarray(self.explainer_.shap_values(features.to_numpy()), dtype=np.float64)
        scores = -estimator.score_samples(features)

        # Convert path-length SHAP values with the secant slope of f.
        difference = scores - self.base_value_
        path_difference = phi.sum(axis=1)
        path_length = self.expected_path_length_ + path_difference
        derivative = -np.log(2.0) / self.normaliser_ * self._score(path_length)
        wide = np.abs(path_difference) > _MIN_PATH_DIFFERENCE
        slope = np.where(wide, difference / np.where(wide, path_difference, 1.0), derivative)
        contributions = phi * slope[:, None]

        # Spread what rounding left over in proportion to |phi|.
        residual = difference - contributions.sum(axis=1)
        weights = np.abs(phi)
        totals = weights.sum(axis=1, keepdims=True)
        weights = np.where(totals > 0, weights / np.where(totals > 0, totals, 1.0), 1.0 / phi.shape[1])
        contributions += residual[:, None] * weights

        columns = list(features.columns)
        return Explanation(
            base_value=self.base_value_,
            contributions=pd.DataFrame(contributions, index=features.index, columns=columns),
            features=features,
            fraud_score=scores,
            path_length_values=pd.DataFrame(phi, index=features.index, columns=columns),
        )

    def explain(self, df: pd.DataFrame) -> Explanation:
        """Explain transactions: build their features with the model's state, then explain them.

        For history features, ``df`` should include each user's recent
        transactions, as :func:`models.features.build_features` describes.
        """
        return self.explain_features(model_features(self.artifact, df))


def history_since(artifact: Mapping[str, Any]) -> str | None:
    """Return the time after which a stored transaction's user history must be read for ``artifact``.

    That is the end of the training window, because the model's feature
    state keeps the users' history up to it. None for a feature set without
    user history, whose features need no earlier rows, or for a model
    without a recorded window.
    """
    if "user_id" not in required_columns(artifact["feature_set"]):
        return None
    return (artifact.get("training_window") or {}).get("end")


def explain_transaction(database_url: str, transaction_id: str, version: int | None = None) -> dict[str, Any]:
    """Explain one stored transaction with a registry version (production when None).

    Returns
    -------
    dict
        The JSON object that ``python -m models.explain`` prints.
    """
    from models import data, registry
    from models.artifact import flag

    version, artifact = registry.load_version(database_url, version)
    context = data.load_user_context(database_url, transaction_id, history_since(artifact))
    explanation = ModelExplainer(artifact).explain(context)
    position = int(np.flatnonzero(context["transaction_id"].to_numpy() == transaction_id)[0])
    score = float(explanation.fraud_score[position])
    return {
        "version": version,
        "transaction_id": transaction_id,
        "fraud_score": score,
        "threshold": float(artifact["threshold"]),
        "flagged": bool(flag(score, artifact["threshold"])),
        "base_value": explanation.base_value,
        "contributions": {k: float(v) for k, v in explanation.contributions.iloc[position].items()},
        "features": {k: float(v) for k, v in explanation.features.iloc[position].items()},
    }


def main(argv: list[str] | None = None) -> int:
    """Explain one transaction and print the result as one JSON line; return the exit status."""
    import argparse
    import json
    import logging
    import sys

    from models.artifact import IncompatibleModelError
    from models.params import TrainingError
    from pipeline.settings import SettingsError, get_settings

    parser = argparse.ArgumentParser(
        prog="python -m models.explain",
        description="Explain one transaction's fraud_score with SHAP and print one JSON line.",
    )
    parser.add_argument("--transaction-id", required=True, help="transaction_id in shop.transactions")
    parser.add_argument("--version", type=int, default=None, help="model version (default: production)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        result = explain_transaction(get_settings().database_url, args.transaction_id, args.version)
    except (TrainingError, SettingsError, IncompatibleModelError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
