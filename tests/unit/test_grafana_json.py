"""The Grafana dashboard JSON, its provisioning files and the macro expander of the tests.

tests/integration/test_grafana_dashboard.py runs every query against PostgreSQL;
these checks need no server.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.overview import DASHBOARD_UID
from tests.grafana_macros import MacroError, expand_macros, format_interval, parse_interval

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_PATH = ROOT / "grafana/dashboards/fraud-workbench.json"
DATASOURCE_PATH = ROOT / "grafana/provisioning/datasources/postgres.yml"
PROVIDER_PATH = ROOT / "grafana/provisioning/dashboards/fraud-workbench.yml"
DATASOURCE_TYPE = "grafana-postgresql-datasource"
DATASOURCE_REFERENCE = {"type": DATASOURCE_TYPE, "uid": "${datasource}"}
GRID_COLUMNS = 24

# The views the dashboard must have, by panel title.
REQUIRED_TITLES = {
    "Transactions per minute",
    "Fraud against non-fraud",
    "Fraud rate",
    "Top 5 frauds by amount",
    "Frauds by country",
    "Frauds by device",
    "Model-flagged against rule-labelled",
    "Pipeline throughput",
    "Event-to-stored latency",
    "Rejected messages",
    "Rejected messages per minute",
}

START = datetime(2021, 6, 1, 10, 0, tzinfo=timezone.utc)
END = datetime(2021, 6, 1, 10, 10, 30, 500000, tzinfo=timezone.utc)


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_PATH.read_text())


PANELS = load_dashboard()["panels"]


def panel_problems(panel: dict[str, Any]) -> list[str]:
    """Return what makes ``panel`` unusable as a provisioned PostgreSQL panel."""
    problems = []
    if panel.get("datasource") != DATASOURCE_REFERENCE:
        problems.append(f"datasource is {panel.get('datasource')!r}")
    targets = panel.get("targets") or []
    if not targets:
        problems.append("no query")
    for target in targets:
        if not str(target.get("rawSql", "")).strip():
            problems.append(f"query {target.get('refId')} has no rawSql")
        if target.get("rawQuery") is not True or target.get("editorMode") != "code":
            problems.append(f"query {target.get('refId')} is not a raw SQL query")
        if target.get("format") not in ("time_series", "table"):
            problems.append(f"query {target.get('refId')} has format {target.get('format')!r}")
        if target.get("datasource") != DATASOURCE_REFERENCE:
            problems.append(f"query {target.get('refId')} has datasource {target.get('datasource')!r}")
    ref_ids = [target.get("refId") for target in targets]
    if len(set(ref_ids)) != len(ref_ids):
        problems.append(f"refIds repeat: {ref_ids}")
    return problems


def panel_id(panel: dict[str, Any]) -> str:
    return f"{panel.get('id')}-{panel.get('title')}"


def targets_of(kind: str | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (panel, target)
        for panel in PANELS
        for target in panel["targets"]
        if kind is None or target["format"] == kind
    ]


def test_dashboard_json_is_valid() -> None:
    dashboard = load_dashboard()

    assert dashboard["uid"] == DASHBOARD_UID
    assert dashboard["title"] == "Fraud workbench"
    assert dashboard["timezone"] == "utc"
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["panels"]


def test_dashboard_has_required_views() -> None:
    titles = {panel["title"] for panel in PANELS}

    assert REQUIRED_TITLES <= titles


def test_panel_ids_are_unique() -> None:
    ids = [panel.get("id") for panel in PANELS]

    assert all(isinstance(value, int) for value in ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("panel", PANELS, ids=panel_id)
def test_panel_has_datasource_and_raw_sql(panel: dict[str, Any]) -> None:
    assert panel_problems(panel) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda panel: panel["targets"][0].pop("rawSql"), "query A has no rawSql"),
        (lambda panel: panel["targets"][0].update(rawSql="  "), "query A has no rawSql"),
        (lambda panel: panel.pop("targets"), "no query"),
        (lambda panel: panel.pop("datasource"), "datasource is None"),
        (lambda panel: panel["targets"][0].update(format="logs"), "query A has format 'logs'"),
    ],
    ids=["missing", "blank", "no-targets", "no-datasource", "bad-format"],
)
def test_panel_check_rejects_broken_panel(change, problem: str) -> None:
    panel = json.loads(json.dumps(PANELS[0]))

    change(panel)

    assert problem in panel_problems(panel)


def test_panels_fit_grid_without_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in PANELS:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= GRID_COLUMNS, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells.get((x, y))}"
                cells[(x, y)] = panel["title"]


def test_datasource_variable_defaults_to_provisioned_uid() -> None:
    variables = {variable["name"]: variable for variable in load_dashboard()["templating"]["list"]}
    provisioned = yaml.safe_load(DATASOURCE_PATH.read_text())["datasources"][0]

    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == DATASOURCE_TYPE
    assert variables["datasource"]["current"]["value"] == provisioned["uid"]
    assert provisioned["type"] == DATASOURCE_TYPE


@pytest.mark.parametrize(("panel", "target"), targets_of(), ids=lambda item: str(item.get("title", item.get("refId"))))
def test_query_is_bounded_by_time_range(panel: dict[str, Any], target: dict[str, Any]) -> None:
    assert "$__timeFilter(" in target["rawSql"]


@pytest.mark.parametrize(
    ("panel", "target"), targets_of("time_series"), ids=lambda item: str(item.get("title", item.get("refId")))
)
def test_time_series_query_groups_by_interval(panel: dict[str, Any], target: dict[str, Any]) -> None:
    sql = target["rawSql"]

    assert re.search(r"\$__timeGroupAlias\(\w+, \$__interval(, 0)?\)", sql)
    # Rates divide by the bucket's own text: $__interval_ms is exact while
    # $__interval is truncated to its largest unit.
    assert "$__interval_ms" not in sql
    assert sql.rstrip().endswith("ORDER BY 1")
    assert panel["type"] == "timeseries"
    assert panel["interval"] == "1m"


@pytest.mark.parametrize(
    "panel", [panel for panel in PANELS if panel["type"] in ("table", "barchart")], ids=panel_id
)
def test_row_query_has_limit(panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        assert re.search(r"\bLIMIT \d+\s*$", target["rawSql"])


@pytest.mark.parametrize("panel", [panel for panel in PANELS if panel["type"] == "stat"], ids=panel_id)
def test_stat_query_returns_one_row(panel: dict[str, Any]) -> None:
    for target in panel["targets"]:
        assert target["format"] == "table"
        assert "GROUP BY" not in target["rawSql"]


@pytest.mark.parametrize("panel", [panel for panel in PANELS if panel["type"] == "barchart"], ids=panel_id)
def test_barchart_x_field_is_selected(panel: dict[str, Any]) -> None:
    field = panel["options"]["xField"]

    assert re.search(rf'AS "{field}"|^\s*{field},', panel["targets"][0]["rawSql"], re.MULTILINE)


def test_dashboard_provider_is_read_only() -> None:
    provider = yaml.safe_load(PROVIDER_PATH.read_text())["providers"][0]

    assert provider["type"] == "file"
    assert provider["disableDeletion"] is True
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"] == "/etc/grafana/dashboards"


def test_datasource_reads_environment() -> None:
    datasource = yaml.safe_load(DATASOURCE_PATH.read_text())["datasources"][0]

    assert datasource["url"] == "${GRAFANA_DB_HOST}"
    assert datasource["user"] == "${GRAFANA_DB_USER}"
    assert datasource["jsonData"]["database"] == "${GRAFANA_DB_NAME}"
    assert datasource["secureJsonData"]["password"] == "${GRAFANA_DB_PASSWORD}"
    assert "password" not in datasource


# ---- The macro expander ------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(minutes=1), "1m"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=2), "2m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=7), "7d"),
        (timedelta(milliseconds=500), "500ms"),
        # Grafana truncates to the largest unit.
        (timedelta(seconds=90), "1m"),
        (timedelta(milliseconds=1500), "1s"),
    ],
)
def test_format_interval_largest_unit(interval: timedelta, text: str) -> None:
    assert format_interval(interval) == text


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60), ("'5m'", 300), ("30s", 30), ("2h", 7200), ("500ms", 0.5)])
def test_parse_interval_units(text: str, seconds: float) -> None:
    assert parse_interval(text) == seconds


def test_parse_interval_rejects_text() -> None:
    with pytest.raises(MacroError, match="Invalid interval 'soon'"):
        parse_interval("soon")


def test_expand_time_filter_utc() -> None:
    local = timezone(timedelta(hours=2))

    sql = expand_macros(
        "WHERE $__timeFilter(event_time)", START.astimezone(local), END, timedelta(minutes=1)
    )

    assert sql == "WHERE event_time BETWEEN '2021-06-01T10:00:00Z' AND '2021-06-01T10:10:30.5Z'"


def test_expand_time_from_and_to() -> None:
    sql = expand_macros("$__timeFrom() < x AND x < $__timeTo()", START, END, timedelta(minutes=1))

    assert sql == "'2021-06-01T10:00:00Z' < x AND x < '2021-06-01T10:10:30.5Z'"


def test_expand_time_group_alias_with_interval() -> None:
    sql = expand_macros(
        "SELECT $__timeGroupAlias(event_time, $__interval, 0), INTERVAL '$__interval', $__interval_ms",
        START,
        END,
        timedelta(minutes=2),
    )

    assert sql == 'SELECT floor(extract(epoch from event_time)/120)*120 AS "time", INTERVAL \'2m\', 120000'


def test_expand_time_group_before_comma_is_alias() -> None:
    sql = expand_macros("SELECT $__timeGroup(t, '5m'), 1 GROUP BY $__timeGroup(t, '5m')", START, END, timedelta(minutes=1))

    assert sql == (
        'SELECT floor(extract(epoch from t)/300)*300 AS "time", 1 '
        "GROUP BY floor(extract(epoch from t)/300)*300"
    )


def test_expand_rejects_unknown_macro() -> None:
    with pytest.raises(MacroError, match=r"Unknown macro \$__timeEpochs"):
        expand_macros("SELECT $__timeEpochs(t)", START, END, timedelta(minutes=1))


def test_expand_rejects_leftover_variable() -> None:
    with pytest.raises(MacroError, match=r"still contains a \$ variable"):
        expand_macros("SELECT $country", START, END, timedelta(minutes=1))


def test_expand_rejects_naive_bounds() -> None:
    with pytest.raises(MacroError, match="timezone-aware"):
        expand_macros("$__timeFrom()", START.replace(tzinfo=None), END, timedelta(minutes=1))


@pytest.mark.parametrize(("panel", "target"), targets_of(), ids=lambda item: str(item.get("title", item.get("refId"))))
def test_every_dashboard_query_expands(panel: dict[str, Any], target: dict[str, Any]) -> None:
    sql = expand_macros(target["rawSql"], START, END, timedelta(minutes=1))

    assert "BETWEEN '2021-06-01T10:00:00Z' AND '2021-06-01T10:10:30.5Z'" in sql
