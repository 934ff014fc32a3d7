"""Evaluate a model on a window of labelled transactions, and compare two versions.

Usage::

    python -m models.evaluate [--version V | --model-path FILE] [--compare-with V2]
        [--input FILE | --start ISO --end ISO --limit ROWS]
        [--threshold T | --contamination C]

Without ``--version`` or ``--model-path`` the production version of the
registry is evaluated. The last line on stdout is one JSON object: the
metrics of :func:`models.metrics.evaluate_scores` plus ``version``, or with
``--compare-with`` an object ``{"rows", "versions": {V: metrics, V2:
metrics}}`` computed on the same rows.

The metrics of a registry version also have its precision on the alerts
that analysts reviewed (:mod:`models.reviewed`): ``reviewed_precision`` and
the counts ``reviewed_confirmed_fraud`` and ``reviewed_false_positive``.
The precision is null, with the reason in ``notes``, when no alert of the
version has a decisive review or the model comes from ``--model-path``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models import data
from models.artifact import IncompatibleModelError, fraud_score, load_artifact, threshold_for_contamination
from models.metrics import evaluate_scores
from models.params import TrainingError
from models.reviewed import reviewed_precision
from pipeline.settings import SettingsError, get_settings

__all__ = ["compare_models", "evaluate_model", "main", "with_reviews"]


def evaluate_model(
    artifact: Mapping[str, Any],
    df: pd.DataFrame,
    threshold: float | None = None,
    contamination: float | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score labelled transactions with a model and compute the evaluation metrics.

    Parameters
    ----------
    artifact
        A model dict of :mod:`models.artifact`.
    df
        Transactions with ``is_fraud`` and the columns of the model's feature
        set; ``fraud_pattern`` is optional.
    threshold, contamination
        At most one: a ``fraud_score`` threshold, or the share of the
        training rows to flag (converted with the stored training scores).
        Neither uses the model's own threshold.

    Returns
    -------
    metrics : dict
        The output of :func:`models.metrics.evaluate_scores`.
    scores : numpy.ndarray
        The ``fraud_score`` of each row of ``df``.
    """
    if threshold is not None and contamination is not None:
        raise ValueError("Pass a threshold or a contamination, not both.")
    if contamination is not None:
        threshold = threshold_for_contamination(artifact["score_quantiles"], contamination)
    elif threshold is None:
        threshold = float(artifact["threshold"])
    scores = fraud_score(artifact, df)
    patterns = df["fraud_pattern"] if "fraud_pattern" in df.columns else None
    return evaluate_scores(df["is_fraud"].to_numpy(), scores, threshold, patterns), scores


def compare_models(artifacts: Mapping[int | str, Mapping[str, Any]], df: pd.DataFrame) -> dict[str, Any]:
    """Evaluate several models on the same rows, each at its own threshold."""
    return {
        "rows": int(len(df)),
        "versions": {str(name): evaluate_model(artifact, df)[0] for name, artifact in artifacts.items()},
    }


def with_reviews(metrics: Mapping[str, Any], reviewed: Mapping[str, Any]) -> dict[str, Any]:
    """Add the precision on reviewed alerts of :mod:`models.reviewed` to evaluation metrics.

    The sentence that explains a null precision goes to ``notes``.
    """
    note = reviewed["reviewed_note"]
    return {
        **metrics,
        "reviewed_precision": reviewed["reviewed_precision"],
        "reviewed_confirmed_fraud": reviewed["reviewed_confirmed_fraud"],
        "reviewed_false_positive": reviewed["reviewed_false_positive"],
        "notes": [*metrics.get("notes", []), *([note] if note else [])],
    }


def _no_reviews(path: Path) -> dict[str, Any]:
    return {
        "reviewed_precision": None,
        "reviewed_confirmed_fraud": None,
        "reviewed_false_positive": None,
        "reviewed_note": (
            f"{path} is a model file, not a registry version, so no alert has its version "
            "and there is no precision on reviewed alerts. Pass --version instead."
        ),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m models.evaluate", description="Evaluate a model on labelled transactions and print one JSON line.")
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--version", type=int, default=None, help="registry version (default: production)")
    model.add_argument("--model-path", type=Path, default=None, help="model file written by models.train")
    parser.add_argument("--compare-with", type=int, default=None, help="second registry version to evaluate on the same rows")
    parser.add_argument("--input", type=Path, default=None, help="JSON-lines file of producer messages instead of PostgreSQL")
    parser.add_argument("--start", default=None, help="rows with event_time >= START (ISO 8601, UTC)")
    parser.add_argument("--end", default=None, help="rows with event_time < END (ISO 8601, UTC)")
    parser.add_argument("--limit", type=int, default=200_000, help="number of newest rows to read (default: 200000)")
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument("--threshold", type=float, default=None, help="flag fraud_score > THRESHOLD (default: the model's)")
    cut.add_argument("--contamination", type=float, default=None, help="flag this share of the training rows, in (0, 0.5]")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, evaluate and return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        from models import registry

        database_url = get_settings().database_url
        if args.input is not None:
            df = data.read_jsonl(args.input, limit=args.limit)
        else:
            df = data.load_transactions(database_url, args.limit, args.start, args.end)
        if len(df) == 0:
            raise TrainingError("No transactions in the evaluation window. Widen --start/--end or pass --input.")

        if args.model_path is not None:
            version, artifact = str(args.model_path), load_artifact(args.model_path)
        else:
            version, artifact = registry.load_version(database_url, args.version)
        if args.compare_with is not None:
            other, other_artifact = registry.load_version(database_url, args.compare_with)
            result = compare_models({version: artifact, other: other_artifact}, df)
            for name, metrics in result["versions"].items():
                reviewed = _no_reviews(args.model_path) if name == str(args.model_path) else reviewed_precision(database_url, int(name))
                result["versions"][name] = with_reviews(metrics, reviewed)
        else:
            metrics, _ = evaluate_model(artifact, df, args.threshold, args.contamination)
            reviewed = _no_reviews(args.model_path) if args.model_path is not None else reviewed_precision(database_url, version)
            result = {"version": version, **with_reviews(metrics, reviewed)}
    except (TrainingError, SettingsError, IncompatibleModelError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
