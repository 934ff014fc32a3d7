"""Command line: ``python -m pipeline.consumers transactions|frauds``."""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline.settings import SettingsError, get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.consumers",
        description=(
            "Stream the Kafka topic into PostgreSQL: 'transactions' writes every valid "
            "message to shop.transactions, 'frauds' writes is_fraud = 1 messages to "
            "shop.fraud_transactions. Both quarantine invalid records in shop.rejected_messages."
        ),
    )
    parser.add_argument("sink", choices=("transactions", "frauds"))
    parser.add_argument("--metrics-file", help="JSON file rewritten after each batch with running totals")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)

    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"Invalid setting: {exc}", file=sys.stderr)
        return 2

    from pipeline.consumers.job import run
    from pipeline.kafka_sink import KafkaUnreachableError
    from pipeline.maven import MavenError

    try:
        return run(settings, args.sink, args.metrics_file)
    except (KafkaUnreachableError, MavenError) as exc:
        print(f"The {args.sink} consumer cannot start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
