"""Settings for every part of the workbench, read from environment variables.

This is the only module that reads the environment. Each setting has a
documented default that runs the local stack on 127.0.0.1. Setting
``KAFKA_BOOTSTRAP_SERVERS`` or ``DATABASE_URL`` points the workbench at an
existing service, and the local stack then does not start its own.

Variables that start with ``WORKBENCH_`` are reserved for this project: an
unknown one is rejected, so a typo fails loudly instead of being ignored.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["Settings", "SettingsError", "get_settings", "redact_url"]

SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# name: (default, help). A default of None means "not set".
VARIABLES: dict[str, tuple[str | None, str]] = {
    "KAFKA_BOOTSTRAP_SERVERS": (
        None,
        "host:port list of an existing Kafka cluster; unset starts the local broker",
    ),
    "KAFKA_TOPIC": ("transactions-data", "topic the producer writes and the consumers read"),
    "KAFKA_TOPIC_PARTITIONS": ("3", "partitions of the topic when the producer creates it"),
    "KAFKA_SECURITY_PROTOCOL": ("PLAINTEXT", "one of " + ", ".join(SECURITY_PROTOCOLS)),
    "KAFKA_SASL_MECHANISM": (None, "one of " + ", ".join(SASL_MECHANISMS)),
    "KAFKA_SASL_USERNAME": (None, "SASL user name"),
    "KAFKA_SASL_PASSWORD": (None, "SASL password (never logged or shown)"),
    "DATABASE_URL": (
        None,
        "postgresql://user:password@host:port/db of an existing server; "
        "unset starts the local PostgreSQL",
    ),
    "SPARK_MASTER": ("local[*]", "Spark master URL, for example spark://host:7077"),
    "SPARK_MAX_OFFSETS_PER_TRIGGER": ("5000", "maximum Kafka records in one micro-batch"),
    "SPARK_TRIGGER_SECONDS": ("1", "seconds between micro-batch starts; 0 starts each as soon as the last ends"),
    "SPARK_CHECKPOINT_DIR": (
        None,
        "checkpoint folder or URI shared by driver restarts (on a cluster: HDFS, S3 or NFS); "
        "default STATE_DIR/checkpoints",
    ),
    "WORKBENCH_STATE_DIR": (".stack", "folder for service data, logs, checkpoints and models"),
    "WORKBENCH_KAFKA_PORT": ("9092", "client port of the local Kafka broker"),
    "WORKBENCH_KAFKA_CONTROLLER_PORT": ("9093", "KRaft controller port of the local broker"),
    "WORKBENCH_POSTGRES_PORT": ("5433", "port of the local PostgreSQL server"),
    "WORKBENCH_GRAFANA_URL": ("http://127.0.0.1:3000", "Grafana address linked from the workbench"),
}

LOCAL_HOST = "127.0.0.1"
LOCAL_DATABASE = "fraud"
LOCAL_DATABASE_USER = "fraud"
# NOTE: the local server listens on 127.0.0.1 only, so a fixed password is a
# convenience for Spark and Grafana, not a secret. External servers bring their own.
LOCAL_DATABASE_PASSWORD = "fraud"


class SettingsError(ValueError):
    """An environment variable has an invalid value or an unknown name."""


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`get_settings`, not directly."""

    kafka_bootstrap_servers: str
    kafka_external: bool
    kafka_topic: str
    kafka_topic_partitions: int
    kafka_security_protocol: str
    kafka_sasl_mechanism: str | None
    kafka_sasl_username: str | None
    kafka_sasl_password: str | None = field(repr=False)
    database_url: str = field(repr=False)
    database_external: bool = False
    spark_master: str = "local[*]"
    spark_max_offsets_per_trigger: int = 5000
    spark_trigger_seconds: float = 1.0
    spark_checkpoint_dir: str = ""
    state_dir: Path = Path(".stack")
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    postgres_port: int = 5433
    grafana_url: str = "http://127.0.0.1:3000"

    @property
    def jobs_dir(self) -> Path:
        return self.state_dir / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def kafka_client_config(self) -> dict[str, str]:
        """Return kafka-python keyword arguments for security, without servers."""
        config: dict[str, str] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username or ""
            config["sasl_plain_password"] = self.kafka_sasl_password or ""
        return config

    def spark_kafka_options(self) -> dict[str, str]:
        """Return the ``kafka.*`` options of Spark's Kafka source."""
        options = {
            "kafka.bootstrap.servers": self.kafka_bootstrap_servers,
            "kafka.security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            module = (
                "org.apache.kafka.common.security.plain.PlainLoginModule"
                if self.kafka_sasl_mechanism == "PLAIN"
                else "org.apache.kafka.common.security.scram.ScramLoginModule"
            )
            username = _jaas_quote(self.kafka_sasl_username or "")
            password = _jaas_quote(self.kafka_sasl_password or "")
            options["kafka.sasl.mechanism"] = self.kafka_sasl_mechanism
            options["kafka.sasl.jaas.config"] = (
                f'{module} required username="{username}" password="{password}";'
            )
        return options

    def describe(self) -> dict[str, str]:
        """Return the settings as display strings, with secrets redacted."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "KAFKA_TOPIC": self.kafka_topic,
            "KAFKA_SECURITY_PROTOCOL": self.kafka_security_protocol,
            "KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism or "",
            "KAFKA_SASL_USERNAME": self.kafka_sasl_username or "",
            "KAFKA_SASL_PASSWORD": "***" if self.kafka_sasl_password else "",
            "DATABASE_URL": redact_url(self.database_url),
            "SPARK_MASTER": self.spark_master,
            "WORKBENCH_STATE_DIR": str(self.state_dir),
        }


def _jaas_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def redact_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _int(env: Mapping[str, str], name: str, low: int, high: int) -> int:
    raw = env.get(name, VARIABLES[name][0])
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise SettingsError(
            f"{name} must be a whole number from {low} to {high}, got {raw!r}."
        ) from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be from {low} to {high}, got {value}.")
    return value


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str | None:
    raw = env.get(name, VARIABLES[name][0])
    if raw is None or raw == "":
        return None
    value = raw.upper()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}.")
    return value


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, VARIABLES[name][0])
    return value if value else None


def get_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings.

    Parameters
    ----------
    env
        Variables to read; ``os.environ`` when omitted.

    Raises
    ------
    SettingsError
        When a value is invalid or a ``WORKBENCH_`` variable is unknown. The
        message names the variable, the value and the allowed values.
    """
    env = os.environ if env is None else env

    unknown = sorted(
        name for name in env if name.startswith("WORKBENCH_") and name not in VARIABLES
    )
    if unknown:
        known = ", ".join(name for name in VARIABLES if name.startswith("WORKBENCH_"))
        raise SettingsError(f"Unknown setting {', '.join(unknown)}; known ones are {known}.")

    kafka_port = _int(env, "WORKBENCH_KAFKA_PORT", 1, 65535)
    controller_port = _int(env, "WORKBENCH_KAFKA_CONTROLLER_PORT", 1, 65535)
    postgres_port = _int(env, "WORKBENCH_POSTGRES_PORT", 1, 65535)
    if len({kafka_port, controller_port, postgres_port}) < 3:
        raise SettingsError(
            "WORKBENCH_KAFKA_PORT, WORKBENCH_KAFKA_CONTROLLER_PORT and "
            f"WORKBENCH_POSTGRES_PORT must differ, got {kafka_port}, {controller_port} "
            f"and {postgres_port}."
        )

    bootstrap = _text(env, "KAFKA_BOOTSTRAP_SERVERS")
    database_url = _text(env, "DATABASE_URL")
    if database_url is not None and urlsplit(database_url).scheme not in (
        "postgresql",
        "postgres",
        "postgresql+psycopg2",
    ):
        raise SettingsError(
            "DATABASE_URL must start with postgresql://, got "
            f"{redact_url(database_url)!r}."
        )

    protocol = _choice(env, "KAFKA_SECURITY_PROTOCOL", SECURITY_PROTOCOLS) or "PLAINTEXT"
    mechanism = _choice(env, "KAFKA_SASL_MECHANISM", SASL_MECHANISMS)
    username = _text(env, "KAFKA_SASL_USERNAME")
    password = _text(env, "KAFKA_SASL_PASSWORD")
    if protocol.startswith("SASL_") and mechanism is None:
        raise SettingsError(
            f"KAFKA_SECURITY_PROTOCOL is {protocol}, so KAFKA_SASL_MECHANISM must be "
            f"set to one of {', '.join(SASL_MECHANISMS)}."
        )
    if mechanism is not None and not (username and password):
        raise SettingsError(
            "KAFKA_SASL_MECHANISM is set, so KAFKA_SASL_USERNAME and "
            "KAFKA_SASL_PASSWORD must be set too."
        )

    spark_master = _text(env, "SPARK_MASTER") or "local[*]"
    trigger_raw = env.get("SPARK_TRIGGER_SECONDS", VARIABLES["SPARK_TRIGGER_SECONDS"][0])
    try:
        trigger_seconds = float(trigger_raw)
    except (TypeError, ValueError):
        trigger_seconds = -1.0
    if not 0 <= trigger_seconds <= 3600:
        raise SettingsError(
            f"SPARK_TRIGGER_SECONDS must be a number from 0 to 3600, got {trigger_raw!r}."
        )

    state_dir = Path(env.get("WORKBENCH_STATE_DIR") or VARIABLES["WORKBENCH_STATE_DIR"][0])

    return Settings(
        kafka_bootstrap_servers=bootstrap or f"{LOCAL_HOST}:{kafka_port}",
        kafka_external=bootstrap is not None,
        kafka_topic=_text(env, "KAFKA_TOPIC") or "transactions-data",
        kafka_topic_partitions=_int(env, "KAFKA_TOPIC_PARTITIONS", 1, 1000),
        kafka_security_protocol=protocol,
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=username,
        kafka_sasl_password=password,
        database_url=database_url or local_database_url(postgres_port),
        database_external=database_url is not None,
        spark_master=spark_master,
        spark_max_offsets_per_trigger=_int(env, "SPARK_MAX_OFFSETS_PER_TRIGGER", 1, 10_000_000),
        spark_trigger_seconds=trigger_seconds,
        spark_checkpoint_dir=_text(env, "SPARK_CHECKPOINT_DIR") or str(state_dir.resolve() / "checkpoints"),
        state_dir=state_dir.resolve(),
        kafka_port=kafka_port,
        kafka_controller_port=controller_port,
        postgres_port=postgres_port,
        grafana_url=_text(env, "WORKBENCH_GRAFANA_URL") or "http://127.0.0.1:3000",
    )


def local_database_url(port: int) -> str:
    """Return the URL of the local stack's database on ``port``."""
    return (
        f"postgresql://{quote(LOCAL_DATABASE_USER)}:{quote(LOCAL_DATABASE_PASSWORD)}"
        f"@{LOCAL_HOST}:{port}/{LOCAL_DATABASE}"
    )
