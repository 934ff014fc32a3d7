"""docker-compose.yml cannot run here (no Docker engine), so check that it parses and agrees with the settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service() -> None:
    services = _compose()["services"]

    assert set(services) == {"kafka", "postgres", "grafana", "workbench"}


def test_compose_initialises_postgres_from_sql() -> None:
    volumes = _compose()["services"]["postgres"]["volumes"]

    assert "./sql:/docker-entrypoint-initdb.d:ro" in volumes


def test_compose_workbench_uses_known_settings() -> None:
    environment = _compose()["services"]["workbench"]["environment"]

    unknown = set(environment) - set(VARIABLES)
    assert not unknown


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_kafka_runs_kraft() -> None:
    environment = _compose()["services"]["kafka"]["environment"]

    assert environment["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_compose_grafana_on_port_3000() -> None:
    grafana = _compose()["services"]["grafana"]

    assert "127.0.0.1:3000:3000" in grafana["ports"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
