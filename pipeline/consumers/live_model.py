"""The production model and the stored history that live scoring reads from PostgreSQL.

Each Python worker of an executor keeps the models it loaded, by version,
so a partition costs one registry read only when the production version
changes. The driver decides the version once per micro-batch
(:func:`production_version`), which is how a promotion reaches the stream
without a restart: the batch after the promotion scores with the new model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from models.artifact import artifact_from_bytes, feature_state
from models.features import INPUT_COLUMNS, FeatureState
from pipeline.consumers.scoring import LedgerHistory, history_bounds, history_cutoff

__all__ = ["LiveModel", "ModelUnavailable", "load_model", "production_version", "read_ledger_history"]

logger = logging.getLogger(__name__)

PRODUCTION_VERSION = "SELECT version FROM shop.model_promotions ORDER BY promoted_at DESC, id DESC LIMIT 1"
SELECT_ARTIFACT = "SELECT artifact FROM shop.model_versions WHERE version = %s"

# Models kept per worker process; two cover a promotion in flight.
MAX_CACHED_MODELS = 2

_BOUNDS = """
bounds AS (
    SELECT *
    FROM unnest(%(users)s::text[], %(since)s::timestamptz[], %(until)s::timestamptz[])
        AS b (user_id, since, until)
)
"""

SELECT_RECENT = f"""
WITH {_BOUNDS}
SELECT t.transaction_id, t.user_id, t.event_time, t.amount, t.device, t.location,
       t.transaction_location
FROM bounds b
JOIN shop.transactions t ON t.user_id = b.user_id
WHERE t.event_time > b.since
  AND t.event_time <= b.until
  AND t.event_time > %(cutoff)s
  AND t.transaction_id <> ALL (%(exclude)s::text[])
ORDER BY t.event_time, t.kafka_partition, t.kafka_offset
"""

SELECT_LAST = f"""
WITH {_BOUNDS}
SELECT b.user_id, l.event_time, l.transaction_location
FROM bounds b
CROSS JOIN LATERAL (
    SELECT t.event_time, t.transaction_location
    FROM shop.transactions t
    WHERE t.user_id = b.user_id
      AND t.event_time <= b.since
      AND t.event_time > %(cutoff)s
    ORDER BY t.event_time DESC, t.kafka_partition DESC, t.kafka_offset DESC
    LIMIT 1
) l
"""

SELECT_KNOWN_DEVICES = f"""
WITH {_BOUNDS}
SELECT DISTINCT p.user_id, p.device
FROM unnest(%(pair_users)s::text[], %(pair_devices)s::text[]) AS p (user_id, device)
JOIN bounds b ON b.user_id = p.user_id
WHERE EXISTS (
    SELECT 1
    FROM shop.transactions t
    WHERE t.user_id = p.user_id
      AND t.device = p.device
      AND t.event_time <= b.since
      AND t.event_time > %(cutoff)s
)
"""


class ModelUnavailable(RuntimeError):
    """Error raised when the production model cannot score, with the cause and the fix in its message."""


@dataclass
class LiveModel:
    """A registry version ready to score, with its SHAP explainer built on first use."""

    version: int
    artifact: Mapping[str, Any]
    state: FeatureState
    cutoff: datetime | None
    _explainer: Any = field(default=None, repr=False)

    @property
    def explainer(self) -> Any:
        if self._explainer is None:
            from models.explain import ModelExplainer

            self._explainer = ModelExplainer(self.artifact)
        return self._explainer


# (database URL, version) -> LiveModel, or the ModelUnavailable it raised:
# an artifact never changes, so neither does the failure to load it.
_models: dict[tuple[str, int], LiveModel | ModelUnavailable] = {}


def production_version(cursor: Any) -> int | None:
    """Return the version in production, or None when none was promoted."""
    cursor.execute(PRODUCTION_VERSION)
    row = cursor.fetchone()
    return None if row is None else int(row[0])


def load_model(cursor: Any, database_url: str, version: int) -> LiveModel:
    """Return registry ``version`` from this process's cache, reading it once.

    Raises
    ------
    ModelUnavailable
        When the version does not exist or cannot be loaded, for example
        because it was saved by another scikit-learn version.
    """
    key = (database_url, version)
    cached = _models.get(key)
    if cached is None:
        cached = _read_model(cursor, version)
        while len(_models) >= MAX_CACHED_MODELS:
            _models.pop(next(iter(_models)))
        _models[key] = cached
    if isinstance(cached, ModelUnavailable):
        raise cached
    return cached


def _read_model(cursor: Any, version: int) -> LiveModel | ModelUnavailable:
    cursor.execute(SELECT_ARTIFACT, (version,))
    row = cursor.fetchone()
    if row is None:
        return ModelUnavailable(
            f"Model version {version} is in production but not in shop.model_versions. "
            "Promote an existing version on the Model page."
        )
    try:
        artifact = artifact_from_bytes(bytes(row[0]), f"Model version {version}")
        state = feature_state(artifact)
    except ValueError as exc:  # IncompatibleModelError is a ValueError.
        logger.error("model version %d cannot score: %s", version, exc)
        return ModelUnavailable(str(exc))
    logger.info("loaded model version %d for live scoring", version)
    return LiveModel(version, artifact, state, history_cutoff(artifact))


def read_ledger_history(cursor: Any, rows: pd.DataFrame, cutoff: datetime) -> LedgerHistory:
    """Read the stored transactions that the features of ``rows`` depend on.

    Parameters
    ----------
    cursor
        A psycopg2 cursor, inside the transaction that writes ``rows``.
    rows
        The partition's valid transactions (``transaction_id``, ``user_id``,
        ``event_time`` as UTC datetimes, ``device``).
    cutoff
        The model's :func:`~pipeline.consumers.scoring.history_cutoff`:
        only transactions after it are read.
    """
    bounds = history_bounds(rows)
    params = {
        "users": bounds["user_id"].tolist(),
        "since": [value.to_pydatetime() for value in bounds["since"]],
        "until": [value.to_pydatetime() for value in bounds["until"]],
        "cutoff": cutoff,
        "exclude": rows["transaction_id"].astype(str).tolist(),
    }
    pairs = rows[["user_id", "device"]].astype(str).drop_duplicates()
    pair_params = {**params, "pair_users": pairs["user_id"].tolist(), "pair_devices": pairs["device"].tolist()}
    return LedgerHistory(
        recent=_frame(cursor, SELECT_RECENT, params, ["transaction_id", *INPUT_COLUMNS]),
        last=_frame(cursor, SELECT_LAST, params, ["user_id", "event_time", "transaction_location"]),
        known_devices=_frame(cursor, SELECT_KNOWN_DEVICES, pair_params, ["user_id", "device"]),
    )


def _frame(cursor: Any, statement: str, params: dict[str, Any], columns: list[str]) -> pd.DataFrame:
    cursor.execute(statement, params)
    names = [description[0] for description in cursor.description]
    return pd.DataFrame(cursor.fetchall(), columns=names).reindex(columns=list(dict.fromkeys(columns)))
