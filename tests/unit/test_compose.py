"""docker-compose.yml cannot run here (no Docker engine), so check that it parses and agrees with the settings."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipeline.settings import VARIABLES

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service() -> None:
    services = _compose()["services"]

    assert set(services) == {"kafka", "postgres", "grafana-reader", "grafana", "workbench"}


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
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in grafana["volumes"]


def _grafana_environment() -> dict:
    return _compose()["services"]["grafana"]["environment"]


def test_compose_grafana_reads_compose_postgres() -> None:
    environment = _grafana_environment()

    assert environment["GRAFANA_DB_HOST"] == "postgres:5432"
    assert environment["GRAFANA_DB_NAME"] == _compose()["services"]["postgres"]["environment"]["POSTGRES_DB"]


def test_compose_grafana_sets_every_datasource_variable() -> None:
    datasource = (ROOT / "grafana/provisioning/datasources/postgres.yml").read_text()
    used = set(re.findall(r"\$\{(GRAFANA_DB_[A-Z_]+)\}", datasource))

    assert used == {"GRAFANA_DB_HOST", "GRAFANA_DB_NAME", "GRAFANA_DB_USER", "GRAFANA_DB_PASSWORD"}
    assert used <= set(_grafana_environment())


def test_compose_grafana_uses_read_only_role() -> None:
    services = _compose()["services"]
    reader = services["grafana-reader"]
    grafana_environment = _grafana_environment()

    assert grafana_environment["GRAFANA_DB_USER"] != services["postgres"]["environment"]["POSTGRES_USER"]
    for name in ("GRAFANA_DB_USER", "GRAFANA_DB_PASSWORD"):
        assert reader["environment"][name] == grafana_environment[name]
    assert reader["command"] == ["psql", "-X", "-f", "/roles/grafana_reader.sql"]
    assert "./sql/roles:/roles:ro" in reader["volumes"]
    assert (ROOT / "sql/roles/grafana_reader.sql").is_file()


def test_compose_grafana_waits_for_reader_role() -> None:
    services = _compose()["services"]

    assert services["grafana"]["depends_on"] == {
        "grafana-reader": {"condition": "service_completed_successfully"}
    }
    assert services["grafana-reader"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


def test_compose_mounts_dashboards_where_provider_reads() -> None:
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/fraud-workbench.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    grafana = _compose()["services"]["grafana"]

    assert f"./grafana/dashboards:{path}:ro" in grafana["volumes"]
    assert list((ROOT / "grafana/dashboards").glob("*.json"))
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(path + "/")
    assert (ROOT / "grafana/dashboards" / home.removeprefix(path + "/")).is_file()


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_compose_postgres_healthy_after_init() -> None:
    test = _compose()["services"]["postgres"]["healthcheck"]["test"]

    # The init scripts run on a server without TCP, so only a TCP check
    # waits until sql/ has been applied.
    assert "-h 127.0.0.1" in test[-1]
