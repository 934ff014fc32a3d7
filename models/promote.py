"""Promote a registered model version to production, or roll back.

Usage::

    python -m models.promote --version V
    python -m models.promote --rollback

The last line on stdout is one JSON object: ``{"production_version": V,
"action": "promote" | "rollback"}``. Errors end with exit status 2 and a
message on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

from models import registry
from models.params import TrainingError
from pipeline.settings import SettingsError, get_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, promote or roll back, and return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m models.promote", description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--version", type=int, help="version in shop.model_versions to put in production")
    action.add_argument("--rollback", action="store_true", help="put the previous production version back")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)

    try:
        database_url = get_settings().database_url
        before = registry.production_version(database_url)
        if args.rollback:
            version = registry.rollback(database_url)
        else:
            version = registry.promote(database_url, args.version)
    except (TrainingError, SettingsError) as exc:
        print(exc, file=sys.stderr)
        return 2
    changed = version != before
    if not changed:
        print(f"Model version {version} was already in production; nothing changed.", file=sys.stderr)
    result = {"production_version": version, "action": "rollback" if args.rollback else "promote", "changed": changed}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
