"""Measure the time from a transaction's event to its row in the fraud queue, with live scoring.

Works on the running local stack, in a scratch database of its own on the
stack's PostgreSQL server, so the workbench's registry and tables are left
alone. It trains a model on simulated history of the same users, promotes
it, starts both consumers on a new topic, and sends ``--rate`` live-stamped
transactions per second for ``--seconds`` seconds. Once every row is
stored, it reports p50, p95 and the maximum of ``ingested_at - event_time``
for the fraud queue (``shop.fraud_transactions``, what analysts see) and,
as the baseline of the same run, for the ledger.

Usage::

    python -m pipeline.stack up
    python bench/queue_latency.py --rate 500 --seconds 300

The last line printed is one JSON object with the machine, command and
figures. The scratch database is dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from consumer_latency import latency_figures, send_and_wait, start_consumers, stop_consumers  # noqa: E402

from models import registry  # noqa: E402
from models.train import train_model  # noqa: E402
from pipeline.migrate import migrate  # noqa: E402
from pipeline.settings import get_settings  # noqa: E402

TARGET_P95_S = 5.0
# Length of the simulated history the model is trained on, longer than
# the ten-minute velocity window.
TRAINING_SECONDS = 900

SCORED_SQL = """
SELECT count(*) FILTER (WHERE model_version IS NOT NULL), count(*) FILTER (WHERE flagged)
FROM shop.transactions WHERE kafka_topic = %s
"""


def _admin(database_url: str, statement: str) -> None:
    admin_url = database_url.rsplit("/", 1)[0] + "/postgres"
    connection = psycopg2.connect(admin_url, connect_timeout=10)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def _promote_model(database_url: str, env: dict[str, str], folder: Path, rate: float) -> int:
    """Train on simulated history of the stream's users at the stream's rate, and promote it.

    The history covers :data:`TRAINING_SECONDS` and ends a minute ago, so
    its velocity features look like the live stream's.
    """
    count = int(rate * TRAINING_SECONDS)
    start = datetime.now(timezone.utc) - timedelta(seconds=TRAINING_SECONDS + 60)
    history = folder / "history.jsonl"
    with history.open("w") as output:
        subprocess.run(
            [sys.executable, "-m", "pipeline.producer", "--stdout", "--count", str(count), "--seed", "0",
             "--start-time", start.isoformat(timespec="seconds"), "--rate", str(rate)],
            cwd=ROOT, env=env, stdout=output, stderr=subprocess.DEVNULL, check=True,
        )
    result = train_model(database_url, {"holdout": 0.2, "limit": count}, input_path=history, output_dir=folder)
    registry.promote(database_url, result["version"])
    return int(result["version"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=500, help="transactions per second sent")
    parser.add_argument("--seconds", type=float, default=300, help="how long to send")
    args = parser.parse_args()

    settings = get_settings()
    database = f"bench_{uuid.uuid4().hex[:10]}"
    database_url = settings.database_url.rsplit("/", 1)[0] + f"/{database}"
    topic = f"bench-queue-{uuid.uuid4().hex[:8]}"
    folder = Path(tempfile.mkdtemp(prefix="queue-latency-"))
    env = dict(
        os.environ,
        KAFKA_TOPIC=topic,
        DATABASE_URL=database_url,
        SPARK_CHECKPOINT_DIR=str(folder / "checkpoints"),
        PYTHONPATH=str(ROOT),
    )

    _admin(settings.database_url, f'CREATE DATABASE "{database}"')
    try:
        migrate(database_url)
        version = _promote_model(database_url, env, folder, args.rate)
        consumers, warmup_ids = start_consumers(env, folder, database_url, topic)
        try:
            summary = send_and_wait(env, database_url, topic, args.rate, args.seconds, len(warmup_ids))
            figures = {
                table: latency_figures(database_url, topic, warmup_ids, table)
                for table in ("fraud_transactions", "transactions")
            }
            with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
                cursor.execute(SCORED_SQL, (topic,))
                scored, flagged = cursor.fetchone()
        finally:
            stop_consumers(consumers)
    finally:
        _admin(settings.database_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    queue_p95 = figures["fraud_transactions"]["latency_p95_s"]
    print(
        json.dumps(
            {
                "benchmark": "queue_latency",
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "system": platform.platform()},
                "command": f"python bench/queue_latency.py --rate {args.rate:g} --seconds {args.seconds:g}",
                "model_version": version,
                "producer_sent": int(summary["sent"]),
                "producer_rate_per_s": summary["rate_per_s"],
                "rows_scored": scored,
                "rows_flagged": flagged,
                "queue": figures["fraud_transactions"],
                "ledger_baseline": figures["transactions"],
                "target_p95_s": TARGET_P95_S,
                "target_met": queue_p95 <= TARGET_P95_S,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
