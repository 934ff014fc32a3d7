"""Model registry in PostgreSQL: ``shop.model_versions`` and ``shop.model_promotions``.

Each trained model is a numbered version with its parameters, feature set,
training window, row count, metrics, scikit-learn version and the joblib
artifact (see ``sql/003_model_registry.sql``). The production model is the
version of the newest promotion. :func:`rollback` promotes the version that
was in production before the current one, so the promotion history only
grows.

Loading a version checks it with :func:`models.artifact.check_compatible`,
so a model saved by another scikit-learn version raises
:class:`models.artifact.IncompatibleModelError` instead of mis-scoring.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from models.artifact import artifact_from_bytes, artifact_to_bytes
from models.data import connect, first_line
from models.params import TrainingError
from pipeline.settings import redact_url

__all__ = [
    "RegistryError",
    "list_versions",
    "load_version",
    "production_version",
    "promote",
    "register_model",
    "rollback",
]

logger = logging.getLogger(__name__)

INSERT_VERSION = text(
    """
    INSERT INTO shop.model_versions (
        parameters, feature_set, feature_names, training_start, training_end,
        row_count, metrics, threshold, sklearn_version, artifact
    ) VALUES (
        CAST(:parameters AS jsonb), :feature_set, :feature_names, :training_start, :training_end,
        :row_count, CAST(:metrics AS jsonb), :threshold, :sklearn_version, :artifact
    )
    RETURNING version
    """
)
LIST_VERSIONS = text(
    """
    SELECT v.version, v.created_at, v.feature_set, v.row_count, v.threshold,
           v.training_start, v.training_end, v.sklearn_version, v.parameters, v.metrics,
           v.version = (SELECT p.version FROM shop.model_promotions p
                        ORDER BY p.promoted_at DESC, p.id DESC LIMIT 1) AS production
    FROM shop.model_versions v
    ORDER BY v.version DESC
    LIMIT :limit
    """
)
PRODUCTION_VERSION = text(
    "SELECT version FROM shop.model_promotions ORDER BY promoted_at DESC, id DESC LIMIT 1"
)
PROMOTION_HISTORY = text(
    "SELECT version FROM shop.model_promotions ORDER BY promoted_at DESC, id DESC"
)
VERSION_EXISTS = text("SELECT EXISTS (SELECT 1 FROM shop.model_versions WHERE version = :version)")
INSERT_PROMOTION = text("INSERT INTO shop.model_promotions (version, reason) VALUES (:version, :reason)")
SELECT_ARTIFACT = text("SELECT artifact FROM shop.model_versions WHERE version = :version")
# Serialises promotions, so two concurrent rollbacks cannot both read the
# same "previous" version. The number is arbitrary but fixed.
PROMOTION_LOCK_ID = 7_305_214


class RegistryError(TrainingError):
    """Error raised when a registry operation cannot run, with the next step in its message."""


def _run(database_url: str, action: str, work: Any) -> Any:
    connection = connect(database_url)
    try:
        with connection.begin():
            return work(connection)
    except DBAPIError as exc:
        if getattr(exc.orig, "pgcode", None) in ("3F000", "42P01"):
            raise RegistryError(
                f"The model registry tables do not exist in {redact_url(database_url)}. "
                "Run `python -m pipeline.migrate` to create them."
            ) from exc
        raise RegistryError(f"{action} failed in {redact_url(database_url)}: {first_line(exc)}.") from exc
    finally:
        connection.close()
        connection.engine.dispose()


def register_model(database_url: str, artifact: Mapping[str, Any]) -> int:
    """Store ``artifact`` as a new version and return its number.

    Raises
    ------
    RegistryError
        When the database cannot be reached or the registry tables are missing.
    """
    window = artifact.get("training_window") or {}
    row = {
        "parameters": json.dumps(artifact["params"]),
        "feature_set": artifact["feature_set"],
        "feature_names": list(artifact["feature_names"]),
        "training_start": window.get("start"),
        "training_end": window.get("end"),
        "row_count": int(artifact["rows"]),
        "metrics": json.dumps(artifact["metrics"], allow_nan=False),
        "threshold": float(artifact["threshold"]),
        "sklearn_version": artifact["sklearn_version"],
        "artifact": artifact_to_bytes(artifact),
    }
    version = _run(database_url, "Registering the model", lambda c: c.execute(INSERT_VERSION, row).scalar_one())
    logger.info("Registered model version %d", version)
    return int(version)


def _require_version(connection: Connection, version: int) -> None:
    if not connection.execute(VERSION_EXISTS, {"version": version}).scalar():
        raise RegistryError(
            f"Model version {version} does not exist. List the versions on the Model page "
            "or train one with `python -m models.train`."
        )


def promote(database_url: str, version: int, reason: str = "promote") -> int:
    """Make ``version`` the production model and return it.

    Promoting the version already in production adds no promotion row, so
    the history and a later rollback see one promotion.

    Raises
    ------
    RegistryError
        When the version does not exist or the database cannot be reached.
    """

    def work(connection: Connection) -> int:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PROMOTION_LOCK_ID})
        _require_version(connection, version)
        if connection.execute(PRODUCTION_VERSION).scalar() == version:
            return False
        connection.execute(INSERT_PROMOTION, {"version": version, "reason": reason})
        return True

    if _run(database_url, f"Promoting model version {version}", work):
        logger.info("Promoted model version %d (%s)", version, reason)
    else:
        logger.info("Model version %d is already in production; nothing changed", version)
    return version


def rollback(database_url: str) -> int:
    """Promote the version that was in production before the current one, and return it.

    Raises
    ------
    RegistryError
        When fewer than two distinct versions were ever promoted.
    """

    def work(connection: Connection) -> int:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": PROMOTION_LOCK_ID})
        history = [row[0] for row in connection.execute(PROMOTION_HISTORY)]
        previous = next((v for v in history if history and v != history[0]), None)
        if previous is None:
            raise RegistryError(
                "There is no earlier production model to roll back to. Promote a version "
                "with `python -m models.promote --version V` instead."
            )
        connection.execute(INSERT_PROMOTION, {"version": previous, "reason": f"rollback from {history[0]}"})
        return previous

    version = _run(database_url, "Rolling back the production model", work)
    logger.info("Rolled back the production model to version %d", version)
    return version


def production_version(database_url: str) -> int | None:
    """Return the production version, or None when none was promoted."""
    return _run(database_url, "Reading the production version", lambda c: c.execute(PRODUCTION_VERSION).scalar())


def list_versions(database_url: str, limit: int = 100) -> pd.DataFrame:
    """Return the newest ``limit`` versions without their artifacts, newest first."""
    return _run(database_url, "Listing model versions", lambda c: pd.read_sql(LIST_VERSIONS, c, params={"limit": limit}))


def load_version(database_url: str, version: int | None = None) -> tuple[int, dict[str, Any]]:
    """Load a version's artifact, or the production one when ``version`` is None.

    Returns
    -------
    tuple
        The version number and the artifact.

    Raises
    ------
    RegistryError
        When the version does not exist or no version is in production.
    models.artifact.IncompatibleModelError
        When the model was saved by another scikit-learn or format version.
    """

    def work(connection: Connection) -> tuple[int, bytes]:
        chosen = version
        if chosen is None:
            chosen = connection.execute(PRODUCTION_VERSION).scalar()
            if chosen is None:
                raise RegistryError(
                    "No model is in production. Promote one with "
                    "`python -m models.promote --version V`, or pass a version."
                )
        _require_version(connection, chosen)
        return chosen, bytes(connection.execute(SELECT_ARTIFACT, {"version": chosen}).scalar_one())

    chosen, blob = _run(database_url, "Loading a model version", work)
    return int(chosen), artifact_from_bytes(blob, f"Model version {chosen}")
