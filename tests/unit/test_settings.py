from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.settings import SettingsError, get_settings, redact_url


def test_settings_defaults_point_at_local_stack() -> None:
    settings = get_settings({})

    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_external is False
    assert settings.kafka_topic == "transactions-data"
    assert settings.database_url == "postgresql://fraud:fraud@127.0.0.1:5433/fraud"
    assert settings.database_external is False
    assert settings.spark_master == "local[*]"
    assert settings.state_dir == Path(".stack").resolve()
    assert settings.spark_checkpoint_dir == str(Path(".stack").resolve() / "checkpoints")


def test_settings_external_services() -> None:
    settings = get_settings(
        {"KAFKA_BOOTSTRAP_SERVERS": "broker:9092", "DATABASE_URL": "postgresql://u:p@db:5432/x"}
    )

    assert settings.kafka_external is True
    assert settings.database_external is True
    assert settings.kafka_bootstrap_servers == "broker:9092"


def test_settings_ports_follow_environment() -> None:
    settings = get_settings({"WORKBENCH_KAFKA_PORT": "19092", "WORKBENCH_POSTGRES_PORT": "15433"})

    assert settings.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert settings.database_url.endswith("@127.0.0.1:15433/fraud")


@pytest.mark.parametrize(
    ("env", "match"),
    [
        ({"WORKBENCH_KAFKA_PORT": "abc"}, "WORKBENCH_KAFKA_PORT must be a whole number"),
        ({"WORKBENCH_POSTGRES_PORT": "70000"}, "WORKBENCH_POSTGRES_PORT must be from 1 to 65535"),
        ({"WORKBENCH_KAFKA_PORT": "5433"}, "must differ"),
        ({"WORKBENCH_STATEDIR": "/tmp"}, "Unknown setting WORKBENCH_STATEDIR"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL must be one of"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_MECHANISM must be set"),
        ({"KAFKA_SASL_MECHANISM": "SCRAM-SHA-256"}, "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"DATABASE_URL": "mysql://u:secret@h/db"}, "must start with postgresql://"),
        ({"SPARK_TRIGGER_SECONDS": "soon"}, "SPARK_TRIGGER_SECONDS must be a number"),
        ({"SPARK_MAX_OFFSETS_PER_TRIGGER": "0"}, "SPARK_MAX_OFFSETS_PER_TRIGGER must be from 1"),
    ],
)
def test_settings_invalid_values(env: dict[str, str], match: str) -> None:
    with pytest.raises(SettingsError, match=match):
        get_settings(env)


def test_settings_error_hides_database_password() -> None:
    with pytest.raises(SettingsError) as raised:
        get_settings({"DATABASE_URL": "mysql://user:secret@host/db"})

    assert "secret" not in str(raised.value)


def test_settings_sasl_scram_options() -> None:
    settings = get_settings(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "broker:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "KAFKA_SASL_USERNAME": "analyst",
            "KAFKA_SASL_PASSWORD": 'pa"ss',
        }
    )

    client = settings.kafka_client_config()
    spark = settings.spark_kafka_options()
    assert client["sasl_mechanism"] == "SCRAM-SHA-256"
    assert client["sasl_plain_username"] == "analyst"
    assert spark["kafka.security.protocol"] == "SASL_SSL"
    assert "ScramLoginModule" in spark["kafka.sasl.jaas.config"]
    assert 'password="pa\\"ss"' in spark["kafka.sasl.jaas.config"]
    assert "pa\"ss" not in repr(settings)
    assert settings.describe()["KAFKA_SASL_PASSWORD"] == "***"


def test_redact_url_hides_password() -> None:
    assert redact_url("postgresql://fraud:secret@127.0.0.1:5433/fraud") == (
        "postgresql://fraud:***@127.0.0.1:5433/fraud"
    )
    assert redact_url("postgresql://127.0.0.1/fraud") == "postgresql://127.0.0.1/fraud"
