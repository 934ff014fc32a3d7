"""Train an Isolation Forest on transactions, evaluate it on a time hold-out and save it.

Usage::

    python -m models.train [--input FILE] [--start ISO] [--end ISO] [--limit ROWS]
        [--feature-set NAME] [--novelty] [--holdout 0.2]
        [--n-estimators 100] [--max-samples auto|INT|FLOAT]
        [--contamination auto|FLOAT] [--max-features INT|FLOAT] [--bootstrap]
        [--random-state 42] [--output-dir DIR] [--no-register]

Transactions come from ``shop.transactions`` (the newest ``--limit`` rows in
the window) or, with ``--input``, from a JSON-lines file of producer
messages. The latest ``--holdout`` share of them in ``event_time`` is kept
out of fitting and the model is evaluated on it with
:func:`models.metrics.evaluate_scores`. The model is saved as a new file
and, unless ``--no-register``, stored in the model registry as a new version.
The fitting itself, without reading or writing, is :mod:`models.fit`.

The last line the command writes to stdout is one JSON object with
``version`` (None when not registered), ``model_path``, the evaluation
metrics (``roc_auc``, ``pr_auc``, ``precision``, ``recall``, ``f1``,
``alerts_per_1000``, ``confusion_matrix``, ``recall_by_pattern``), and
``rows``, ``holdout_rows``, ``feature_set``, ``threshold``,
``training_window`` and ``notes``. Logs go to stderr. Invalid parameters,
no rows and an unreachable database end the command with exit status 2 and
a message on stderr that names the problem and the fix, without a traceback.

The ``fraud_score`` convention, the ``threshold`` and the model file are
defined in :mod:`models.artifact`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from models import data
from models.artifact import save_artifact
from models.features import FEATURE_SETS
from models.fit import Progress, log_progress, fit_and_evaluate, fit_forest
from models.params import TrainingError, TrainingParams, as_params
from pipeline.settings import SettingsError, get_settings, redact_url

__all__ = ["TrainingError", "TrainingParams", "fit_and_evaluate", "fit_forest", "train_model", "main"]

logger = logging.getLogger(__name__)

NO_ROWS_MESSAGE = (
    "No transactions to train on: shop.transactions has no rows in the requested window. "
    "Start the producer and the transactions consumer, or widen --start/--end, then train again."
)

def _write_error(folder: Path, exc: OSError) -> TrainingError:
    return TrainingError(
        f"Could not write the model file to {folder}: {exc.strerror or exc}. "
        "Pass a writable folder with --output-dir, or set WORKBENCH_STATE_DIR to one."
    )


def train_model(
    database_url: str | None,
    params: TrainingParams | Mapping[str, Any] | None = None,
    *,
    input_path: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    register: bool = True,
    progress: Progress = log_progress,
) -> dict[str, Any]:
    """Read transactions, train and evaluate a model, save it and register it.

    Parameters
    ----------
    database_url
        PostgreSQL URL to read from (unless ``input_path``) and to register in.
    params
        :class:`TrainingParams` or a mapping of its fields; defaults when None.
    input_path
        A JSON-lines file of producer messages to read instead of the database.
    output_dir
        Folder of the model file; ``models_dir`` of the settings when None.
    register
        Store the model in ``shop.model_versions`` as a new version.
    progress
        Called with the share done and a sentence as training advances.

    Returns
    -------
    dict
        ``version`` (None when not registered), ``model_path`` and the
        metrics of :func:`fit_and_evaluate`.

    Raises
    ------
    TrainingError
        When a parameter is invalid, there are no rows, or the file or
        database cannot be read or written.
    """
    params = as_params(params or {})
    folder = Path(output_dir) if output_dir is not None else get_settings().models_dir

    logger.info("Training started: %s", params)
    progress(0.0, "Reading transactions")
    if input_path is not None:
        df = data.read_jsonl(input_path, limit=params.limit)
        source = str(input_path)
    else:
        df = data.load_transactions(database_url, params.limit, params.start, params.end)
        source = redact_url(database_url)
    if len(df) == 0:
        raise TrainingError(NO_ROWS_MESSAGE)
    logger.info("Read %d transactions from %s", len(df), source)

    artifact, metrics = fit_and_evaluate(df, params, progress)
    for note in metrics["notes"]:
        logger.warning("%s", note)
    try:
        path = save_artifact(artifact, folder)
    except OSError as exc:
        raise _write_error(folder, exc) from exc

    version = None
    if register:
        from models import registry

        version = registry.register_model(database_url, artifact)
    logger.info(
        "Training finished: version %s, model %s, %d rows, roc_auc %s, pr_auc %s",
        version,
        path,
        metrics["rows"],
        metrics["roc_auc"],
        metrics["pr_auc"],
    )
    return {"version": version, "model_path": str(path), **metrics}


def parse_contamination(value: str) -> float | str:
    """Parse ``auto`` or a number, for argparse."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be 'auto' or a number in (0, 0.5], got {value!r}") from None


def parse_share_or_count(value: str) -> int | float | str:
    """Parse ``auto``, a whole number or a share, for argparse."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be 'auto', a whole number or a number in (0, 1], got {value!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m models.train",
        description=(
            "Train an Isolation Forest on transactions, evaluate it on the latest part of "
            "them, save and register it, and print the result as one JSON line."
        ),
    )
    source = parser.add_argument_group("data")
    source.add_argument("--input", type=Path, default=None, help="JSON-lines file of producer messages to read instead of PostgreSQL")
    source.add_argument("--start", default=None, help="read rows with event_time >= START (ISO 8601, UTC)")
    source.add_argument("--end", default=None, help="read rows with event_time < END (ISO 8601, UTC)")
    source.add_argument("--limit", type=int, default=200_000, help="number of newest transactions to read (default: 200000)")
    source.add_argument("--holdout", type=float, default=0.2, help="latest share of rows kept for evaluation, in [0, 0.9] (default: 0.2)")
    source.add_argument("--novelty", action="store_true", help="fit only on training rows with is_fraud = 0")
    source.add_argument("--feature-set", default="user_history", help=f"one of {', '.join(FEATURE_SETS)} (default: user_history)")

    forest = parser.add_argument_group("IsolationForest")
    forest.add_argument("--n-estimators", type=int, default=100, help="number of trees (default: 100)")
    forest.add_argument("--max-samples", type=parse_share_or_count, default="auto", help="rows per tree: 'auto', a count, or a share in (0, 1] (default: auto)")
    forest.add_argument("--contamination", type=parse_contamination, default=0.1, help="expected share of fraud in (0, 0.5], or 'auto' (default: 0.1)")
    forest.add_argument("--max-features", type=parse_share_or_count, default=1.0, help="features per tree: a count, or a share in (0, 1] (default: 1.0)")
    forest.add_argument("--bootstrap", action="store_true", help="draw each tree's rows with replacement")
    forest.add_argument("--random-state", type=int, default=42, help="seed of the estimator (default: 42)")

    output = parser.add_argument_group("output")
    output.add_argument("--output-dir", type=Path, default=None, help="folder for the new model file (default: models/ under WORKBENCH_STATE_DIR)")
    output.add_argument("--no-register", action="store_true", help="do not store the model in shop.model_versions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, train a model and return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)

    try:
        params = TrainingParams(
            n_estimators=args.n_estimators,
            contamination=args.contamination,
            random_state=args.random_state,
            max_samples=args.max_samples,
            max_features=args.max_features,
            bootstrap=args.bootstrap,
            feature_set=args.feature_set,
            novelty=args.novelty,
            holdout=args.holdout,
            limit=args.limit,
            start=args.start,
            end=args.end,
        )
        settings = get_settings()
        result = train_model(
            settings.database_url,
            params,
            input_path=args.input,
            output_dir=args.output_dir if args.output_dir is not None else settings.models_dir,
            register=not args.no_register,
        )
    except (TrainingError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 2

    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
