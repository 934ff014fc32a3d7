"""Progress files that long-running jobs write and the supervisor reads.

A job given ``--metrics-file PATH`` rewrites PATH with a small JSON object
(for example ``{"sent": 120, "failed": 0}``) as it works. The write goes to a
temporary file that is then renamed over PATH, so a reader never sees half an
object.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

__all__ = ["write_metrics", "read_metrics"]


def write_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    """Replace the metrics file at ``path`` with ``metrics`` plus ``updated_at``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    body = dict(metrics, updated_at=time.time())
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(body, default=str))
    os.replace(temporary, target)


def read_metrics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Return the metrics at ``path``, or an empty dict when there are none yet."""
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
