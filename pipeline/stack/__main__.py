"""Command line: ``python -m pipeline.stack up | down | status [--json]``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

import psycopg2

from pipeline.migrate import MigrationError
from pipeline.settings import SettingsError, get_settings
from pipeline.stack import StackError, down, status, up


def _print_status(report: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    for name in ("kafka", "postgres"):
        service = report[name]
        address = service.get("bootstrap_servers") or service.get("url")
        state = "running" if service["running"] else "stopped"
        if service["external"]:
            owner = "external"
        elif service["pid"]:
            owner = f"pid {service['pid']}"
        else:
            owner = "local"
        print(f"{name:<9} {state:<8} {address} ({owner})")


def _warn_about_running_jobs(settings) -> None:
    from pipeline.supervisor import default_supervisor

    running = [name for name, job in default_supervisor(settings).status_all().items() if job.running]
    if running:
        print(
            f"Warning: the workbench jobs {', '.join(running)} still run and will fail without "
            "Kafka and PostgreSQL. Stop them with `python -m pipeline.supervisor stop-all` "
            "(`make stop` stops the jobs and then the stack).",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.stack",
        description="Start, stop or report the local Kafka broker and PostgreSQL server.",
    )
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument("--json", action="store_true", help="print the status as one JSON object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # kafka-python logs every connection step at INFO while up waits for the broker.
    logging.getLogger("kafka").setLevel(logging.WARNING)

    try:
        settings = get_settings()
        if args.command == "up":
            report = up(settings)
        elif args.command == "down":
            _warn_about_running_jobs(settings)
            down(settings)
            report = status(settings)
        else:
            report = status(settings)
    except (SettingsError, StackError, MigrationError) as exc:
        print(f"stack {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except psycopg2.OperationalError as exc:
        print(f"stack {args.command} failed: PostgreSQL is not reachable: {str(exc).strip()}", file=sys.stderr)
        return 1

    _print_status(report, args.json)
    if args.command == "up":
        return 0 if report["kafka"]["running"] and report["postgres"]["running"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
