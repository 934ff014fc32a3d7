"""Measure model training time, scoring throughput and SHAP speed on synthetic transactions.

Usage::

    python bench/model_benchmarks.py [--rows N] [--n-estimators T] [--feature-set NAME] [--shap-rows R]
        [--only training|scoring|shap] [--shuffle]

The rows come from :func:`models.synthetic.simulate_transactions`, so no
database or Kafka is needed. Three figures are measured:

* Training: :func:`models.train.fit_and_evaluate` on all ``--rows`` rows
  with a 0.2 time hold-out, which is what ``python -m models.train`` runs
  after reading the rows (features, forest fit in steps, evaluation).
* Scoring: :func:`models.artifact.fraud_score` (features and model) against
  ``estimator.score_samples`` on the already built features of the same
  rows. ``scoring_ratio`` is the throughput of the first divided by that of
  the second; 1.0 means that building features costs nothing.
* SHAP: :meth:`models.explain.ModelExplainer.explain_features` on
  ``--shap-rows`` rows, after the explainer is built (timed separately).

Each scoring figure is the best of ``--repeats`` runs. ``--only`` measures
one part: the model is still trained, because scoring and SHAP need one,
but only the figures of that part are reported. ``--shuffle`` scores the
rows in random order instead of time order. The last line of output is one
JSON object with the figures, the command, the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    # Lets `python bench/model_benchmarks.py` import the project from any folder.
    sys.path.insert(0, str(PROJECT_ROOT))

import sklearn  # noqa: E402

from models.artifact import fraud_score, model_features  # noqa: E402
from models.explain import ModelExplainer  # noqa: E402
from models.features import FEATURE_SETS  # noqa: E402
from models.synthetic import simulate_transactions  # noqa: E402
from models.train import fit_and_evaluate  # noqa: E402

DEFAULT_ROWS = 200_000
SEED = 1
PARTS = ("training", "scoring", "shap")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_time(work, repeats: int) -> float:
    """Run ``work`` ``repeats`` times and return the shortest wall time in seconds."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/model_benchmarks.py", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help=f"synthetic transactions to train and score (default: {DEFAULT_ROWS})")
    parser.add_argument("--users", type=int, default=None, help="synthetic users (default: rows / 100, at least 100)")
    parser.add_argument("--n-estimators", type=int, default=100, help="number of trees (default: 100)")
    parser.add_argument("--feature-set", default="user_history", choices=list(FEATURE_SETS), help="feature set (default: user_history)")
    parser.add_argument("--shap-rows", type=int, default=2_000, help="rows explained with SHAP (default: 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each scoring measurement; the best counts (default: 3)")
    parser.add_argument("--only", choices=PARTS, default=None, help="measure only this part (default: all three)")
    parser.add_argument("--shuffle", action="store_true", help="score the rows in random order instead of time order")
    args = parser.parse_args(argv)
    if args.rows < 1_000:
        parser.error(f"--rows must be at least 1000, got {args.rows}")
    users = args.users or max(100, args.rows // 100)

    started = time.perf_counter()
    df = simulate_transactions(rows=args.rows, users=users, seed=SEED)
    simulate_seconds = time.perf_counter() - started
    print(f"Simulated {len(df):,} transactions in {simulate_seconds:.1f} s", file=sys.stderr)

    params = {"n_estimators": args.n_estimators, "feature_set": args.feature_set, "holdout": 0.2}
    started = time.perf_counter()
    artifact, metrics = fit_and_evaluate(df, params)
    train_seconds = time.perf_counter() - started
    print(f"Trained on {metrics['rows']:,} rows in {train_seconds:.1f} s", file=sys.stderr)

    parts = PARTS if args.only is None else (args.only,)
    result = {
        "benchmark": "model",
        "command": shlex.join(["python", "bench/model_benchmarks.py", *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "load_average": None,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
        },
        "rows": int(len(df)),
        "users": users,
        "n_estimators": args.n_estimators,
        "feature_set": args.feature_set,
        "train_rows": metrics["rows"],
    }
    if "training" in parts:
        result["train_seconds"] = round(train_seconds, 3)
        result["holdout_roc_auc"] = metrics["roc_auc"]

    scored = df.sample(frac=1.0, random_state=SEED) if args.shuffle else df
    features = model_features(artifact, scored)
    if "scoring" in parts:
        estimator = artifact["estimator"]
        full_seconds = best_time(lambda: fraud_score(artifact, scored), args.repeats)
        plain_seconds = best_time(lambda: estimator.score_samples(features), args.repeats)
        print(f"Scored {len(df):,} rows: {full_seconds:.2f} s with features, {plain_seconds:.2f} s without", file=sys.stderr)
        result["scoring_order"] = "random" if args.shuffle else "time"
        result["scoring_rows_per_second"] = round(len(df) / full_seconds)
        result["score_samples_rows_per_second"] = round(len(df) / plain_seconds)
        result["scoring_ratio"] = round(plain_seconds / full_seconds, 3)
        result["scoring_ratio_target"] = 0.8

    if "shap" in parts:
        started = time.perf_counter()
        explainer = ModelExplainer(artifact)
        explainer_seconds = time.perf_counter() - started
        sample = features.sample(min(args.shap_rows, len(features)), random_state=SEED)
        started = time.perf_counter()
        explainer.explain_features(sample)
        shap_seconds = time.perf_counter() - started
        print(f"Explained {len(sample):,} rows with SHAP in {shap_seconds:.1f} s", file=sys.stderr)
        result["explainer_build_seconds"] = round(explainer_seconds, 3)
        result["shap_rows"] = int(len(sample))
        result["shap_rows_per_second"] = round(len(sample) / shap_seconds, 1)

    # The load during the measurements, not before them.
    result["machine"]["load_average"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
