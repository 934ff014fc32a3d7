"""Every query of the Grafana dashboard, run against the real schema in PostgreSQL.

The test creates its own database on the ``stack`` fixture's server, applies
the migrations and inserts known rows around a fixed UTC range. It expands
each panel's Grafana macros for that range (tests/grafana_macros.py) and
checks the columns and values that the panel receives. The expected values
are worked out by hand from the rows below, in 2-minute buckets.

The read-only role of sql/roles/grafana_reader.sql is created with psql,
the way docs/grafana.md describes, and must run every panel query but no write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
import pytest
from psycopg2 import sql as pgsql
from sqlalchemy.engine import make_url

from tests.grafana_macros import expand_macros

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "grafana/dashboards/fraud-workbench.json").read_text())
ROLE_SCRIPT = ROOT / "sql/roles/grafana_reader.sql"

START = datetime(2021, 6, 1, 10, 0, tzinfo=timezone.utc)
END = START + timedelta(minutes=10)
INTERVAL = timedelta(minutes=2)
# Bucket starts of the range, as the epoch seconds that $__timeGroupAlias returns.
B0, B1, B2, B3, B4 = (START.timestamp() + 120 * index for index in range(5))

# (id, event time after START, seconds to storage, is_fraud, amount, device, country)
LEDGER = [
    ("tx-01", timedelta(seconds=10), 2, 0, "10.00", "phone", "DE"),
    ("tx-02", timedelta(seconds=50), 4, 0, "20.00", "phone", "DE"),
    ("tx-03", timedelta(seconds=90), 1, 1, "900.00", "laptop", "FR"),
    ("tx-04", timedelta(seconds=130), 10, 0, "30.00", "tablet", "DE"),
    ("tx-05", timedelta(seconds=180), 3, 1, "500.00", "phone", "BR"),
    ("tx-06", timedelta(seconds=260), 6, 1, "700.00", "phone", "FR"),
    ("tx-07", timedelta(seconds=340), 2, 1, "300.00", "laptop", "XX"),
    ("tx-08", timedelta(seconds=365), 5, 1, "800.00", "phone", "FR"),
    ("tx-09", timedelta(seconds=435), 50, 1, "100.00", "kiosk", "DE"),
    ("tx-10", timedelta(seconds=510), 2, 0, "40.00", "phone", "DE"),
    # Outside the range, in event time and in storage time.
    ("tx-early", timedelta(minutes=-10), 2, 1, "99999.00", "phone", "FR"),
    ("tx-late", timedelta(minutes=20), 2, 1, "88888.00", "phone", "FR"),
]
# Rows of the fraud queue: every labelled fraud, and tx-04 flagged by the model only.
MODEL_FLAGGED = {"tx-04", "tx-06", "tx-08"}
# (offset, received after START, reason)
REJECTED = [
    (1, timedelta(seconds=30), "the record value is not valid JSON"),
    (2, timedelta(seconds=60), "field amount must be a number, got \"N/A\""),
    (3, timedelta(minutes=5), "field user_id is missing"),
    (4, timedelta(hours=-1), "outside the range"),
]

# Panel title -> refId -> (columns, rows). Time series rows hold only the
# buckets with data, because Grafana adds the empty ones (fill 0) itself.
EXPECTED: dict[str, dict[str, tuple[list[str], list[tuple]]]] = {
    "Transactions": {"A": (["transactions"], [(10,)])},
    "Frauds": {"A": (["frauds"], [(6,)])},
    "Fraud rate": {"A": (["fraud rate"], [(0.6,)])},
    "Model-flagged": {"A": (["model-flagged"], [(3,)])},
    "Rejected messages": {"A": (["rejected messages"], [(3,)])},
    # Latencies 1, 2, 2, 2, 3, 4, 5, 6, 10, 50 s: 10 + 0.55 * (50 - 10).
    "p95 event-to-stored latency": {"A": (["p95 latency"], [(32.0,)])},
    "Transactions per minute": {
        "A": (
            ["time", "transactions per minute"],
            [(B0, 1.5), (B1, 1.0), (B2, 1.0), (B3, 1.0), (B4, 0.5)],
        )
    },
    "Fraud against non-fraud": {
        "A": (
            ["time", "non-fraud", "fraud"],
            [(B0, 1.0, 0.5), (B1, 0.5, 0.5), (B2, 0.0, 1.0), (B3, 0.0, 1.0), (B4, 0.5, 0.0)],
        )
    },
    "Top 5 frauds by amount": {
        "A": (
            ["event time", "transaction", "user", "amount", "device", "country", "source"],
            [
                (START + timedelta(seconds=90), "tx-03", "user-tx-03", 900.0, "laptop", "FR", "rule"),
                (START + timedelta(seconds=365), "tx-08", "user-tx-08", 800.0, "phone", "FR", "both"),
                (START + timedelta(seconds=260), "tx-06", "user-tx-06", 700.0, "phone", "FR", "both"),
                (START + timedelta(seconds=180), "tx-05", "user-tx-05", 500.0, "phone", "BR", "rule"),
                (START + timedelta(seconds=340), "tx-07", "user-tx-07", 300.0, "laptop", "XX", "rule"),
            ],
        )
    },
    "Model-flagged against rule-labelled": {
        "A": (
            ["time", "rule only", "rule and model", "model only"],
            [(B0, 0.5, 0.0, 0.0), (B1, 0.5, 0.0, 0.5), (B2, 0.5, 0.5, 0.0), (B3, 0.5, 0.5, 0.0)],
        )
    },
    "Frauds by country": {
        "A": (["country", "frauds"], [("France", 3), ("Brazil", 1), ("Germany", 1), ("XX", 1)])
    },
    "Frauds by device": {"A": (["device", "frauds"], [("phone", 3), ("laptop", 2), ("kiosk", 1)])},
    "Pipeline throughput": {
        # Stored at 0:12, 0:54, 1:31 | 2:20, 3:03 | 4:26, 5:42 | 6:10 | 8:05, 8:32.
        "A": (
            ["time", "ledger rows per minute"],
            [(B0, 1.5), (B1, 1.0), (B2, 1.0), (B3, 0.5), (B4, 1.0)],
        ),
        "B": (
            ["time", "fraud table rows per minute"],
            [(B0, 0.5), (B1, 1.0), (B2, 1.0), (B3, 0.5), (B4, 0.5)],
        ),
    },
    "Event-to-stored latency": {
        # percentile_cont interpolates: p95 of (1, 2, 4) is 2 + 0.9 * 2.
        "A": (
            ["time", "p50", "p95", "max"],
            [
                (B0, 2.0, 3.8, 4.0),
                (B1, 6.5, 9.65, 10.0),
                (B2, 4.0, 5.8, 6.0),
                (B3, 5.0, 5.0, 5.0),
                (B4, 26.0, 47.6, 50.0),
            ],
        )
    },
    "Rejected messages per minute": {"A": (["time", "rejected per minute"], [(B0, 1.0), (B2, 0.5)])},
    "Newest rejected messages": {
        "A": (
            ["received at", "topic", "partition", "offset", "reason"],
            [
                (START + timedelta(minutes=5), "grafana-test", 0, 3, "field user_id is missing"),
                (START + timedelta(seconds=60), "grafana-test", 0, 2, "field amount must be a number, got \"N/A\""),
                (START + timedelta(seconds=30), "grafana-test", 0, 1, "the record value is not valid JSON"),
            ],
        )
    },
}

LEDGER_SQL = """
INSERT INTO shop.transactions (
    transaction_id, user_id, event_time, first_name, last_name, location, transaction_location,
    amount, device, is_fraud, kafka_topic, kafka_partition, kafka_offset, ingested_at
) VALUES (%s, %s, %s, 'Ada', 'Lovelace', 'DE', %s, %s, %s, %s, 'grafana-test', 0, %s, %s)
"""
FRAUD_SQL = """
INSERT INTO shop.fraud_transactions (
    transaction_id, user_id, event_time, first_name, last_name, location, transaction_location,
    amount, device, kafka_topic, kafka_partition, kafka_offset, ingested_at,
    is_fraud, rule_flagged, model_flagged, fraud_score
) VALUES (%s, %s, %s, 'Ada', 'Lovelace', 'DE', %s, %s, %s, 'grafana-test', 0, %s, %s, %s, %s, %s, %s)
"""


@dataclass(frozen=True)
class Query:
    panel: str
    ref_id: str
    sql: str


QUERIES = [
    Query(panel["title"], target["refId"], expand_macros(target["rawSql"], START, END, INTERVAL))
    for panel in DASHBOARD["panels"]
    for target in panel["targets"]
]


def query_id(query: Query) -> str:
    return f"{query.panel}-{query.ref_id}"


def execute(
    database_url: str, statement: str | pgsql.Composable, params: tuple | None = None
) -> tuple[list[str], list[tuple]]:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            if cursor.description is None:
                return [], []
            return [column.name for column in cursor.description], cursor.fetchall()
    finally:
        connection.close()


def normalise(row: tuple) -> tuple:
    """Read numbers as floats rounded to 6 places, so numeric, bigint and double precision compare alike."""
    return tuple(
        round(float(value), 6)
        if isinstance(value, (Decimal, int, float)) and not isinstance(value, bool)
        else value
        for value in row
    )


def insert_rows(database_url: str) -> None:
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            for offset, (transaction_id, after, latency, is_fraud, amount, device, country) in enumerate(LEDGER):
                event_time = START + after
                stored_at = event_time + timedelta(seconds=latency)
                user_id = f"user-{transaction_id}"
                cursor.execute(
                    LEDGER_SQL,
                    (transaction_id, user_id, event_time, country, amount, device, is_fraud, offset, stored_at),
                )
                if is_fraud or transaction_id in MODEL_FLAGGED:
                    model_flagged = transaction_id in MODEL_FLAGGED
                    cursor.execute(
                        FRAUD_SQL,
                        (
                            transaction_id, user_id, event_time, country, amount, device, offset, stored_at,
                            is_fraud, bool(is_fraud), model_flagged, 0.9 if model_flagged else None,
                        ),
                    )
            for offset, after, reason in REJECTED:
                cursor.execute(
                    "INSERT INTO shop.rejected_messages"
                    " (kafka_topic, kafka_partition, kafka_offset, raw_payload, reason, received_at)"
                    " VALUES ('grafana-test', 0, %s, 'oops', %s, %s)",
                    (offset, reason, START + after),
                )
    finally:
        connection.close()


@pytest.fixture(scope="module")
def database_url(own_database: str) -> str:
    """Return the URL of a new, migrated database with the rows above."""
    insert_rows(own_database)
    return own_database


def test_every_panel_query_is_checked() -> None:
    checked = {(panel, ref_id) for panel, targets in EXPECTED.items() for ref_id in targets}

    assert {(query.panel, query.ref_id) for query in QUERIES} == checked


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_panel_query_returns_expected_rows(database_url: str, query: Query) -> None:
    expected_columns, expected_rows = EXPECTED[query.panel][query.ref_id]

    columns, rows = execute(database_url, query.sql)

    assert columns == expected_columns
    assert [normalise(row) for row in rows] == [normalise(row) for row in expected_rows]


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_panel_query_uses_indexes(database_url: str, query: Query) -> None:
    # With sequential scans priced out, PostgreSQL still picks one where no
    # index can serve the time filter, so a Seq Scan here is a missing index.
    connection = psycopg2.connect(database_url, connect_timeout=5)
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN (FORMAT JSON) " + query.sql)
            plan = cursor.fetchone()[0][0]["Plan"]
    finally:
        connection.close()

    scans = list(plan_nodes(plan))
    assert scans, "the plan reads no table"
    assert [node for node in scans if node["Node Type"] == "Seq Scan"] == []


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield the nodes of an EXPLAIN plan that read a table."""
    if "Relation Name" in node:
        yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


# ---- The read-only role --------------------------------------------------------


def psql() -> str:
    path = shutil.which("psql")
    assert path, "psql is not installed; `make setup` installs it with the postgresql package"
    return path


def run_role_script(database_url: str, **variables: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GRAFANA_DB_", "PG"))}
    env.update(variables)
    return subprocess.run(
        [psql(), "-X", database_url, "-f", str(ROLE_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def role_url(database_url: str, role: str, password: str) -> str:
    return make_url(database_url).set(username=role, password=password).render_as_string(hide_password=False)


def new_role_name() -> str:
    """Return a role name unique to this run, dropped when the module ends."""
    role = f"grafana_reader_{uuid.uuid4().hex[:8]}"
    CREATED_ROLES.append(role)
    return role


CREATED_ROLES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def drop_created_roles(stack) -> Iterator[None]:
    # Set up before database_url, so it ends after the test database is
    # dropped: a role cannot be dropped while a database grants it rights.
    yield
    for role in CREATED_ROLES:
        execute(stack.database_url, pgsql.SQL("DROP ROLE IF EXISTS {}").format(pgsql.Identifier(role)))


@pytest.fixture(scope="module")
def reader(database_url: str) -> tuple[str, str]:
    """Create the read-only role with the script; return its name and password."""
    role, password = new_role_name(), "first password"

    result = run_role_script(database_url, GRAFANA_DB_USER=role, GRAFANA_DB_PASSWORD=password)

    assert result.returncode == 0, result.stderr
    assert f"Created role {role}." in result.stderr
    return role, password


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_reader_role_runs_panel_query(database_url: str, reader: tuple[str, str], query: Query) -> None:
    as_owner = execute(database_url, query.sql)

    as_reader = execute(role_url(database_url, *reader), query.sql)

    assert as_reader == as_owner


def test_reader_role_cannot_write(database_url: str, reader: tuple[str, str]) -> None:
    url = role_url(database_url, *reader)

    with pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
        execute(url, "DELETE FROM shop.rejected_messages")
    # Leaving read-only mode is allowed, but the role has no write grant.
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        execute(url, "SET TRANSACTION READ WRITE; DELETE FROM shop.rejected_messages")
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        execute(url, "SET TRANSACTION READ WRITE; CREATE TABLE shop.grafana_notes (x int)")
    assert execute(database_url, "SELECT count(*) FROM shop.rejected_messages")[1] == [(len(REJECTED),)]


def test_reader_role_has_statement_timeout(database_url: str, reader: tuple[str, str]) -> None:
    assert execute(role_url(database_url, *reader), "SHOW statement_timeout")[1] == [("30s",)]


def test_reader_role_reads_later_tables(database_url: str, reader: tuple[str, str]) -> None:
    execute(database_url, "CREATE TABLE shop.later_table (x int); INSERT INTO shop.later_table VALUES (7)")
    try:
        assert execute(role_url(database_url, *reader), "SELECT x FROM shop.later_table")[1] == [(7,)]
    finally:
        execute(database_url, "DROP TABLE shop.later_table")


def test_reader_script_rerun_changes_password(database_url: str, reader: tuple[str, str]) -> None:
    role, old_password = reader
    new_password = "second password"

    result = run_role_script(database_url, GRAFANA_DB_USER=role, GRAFANA_DB_PASSWORD=new_password)

    try:
        assert result.returncode == 0, result.stderr
        assert "Created role" not in result.stderr
        assert execute(role_url(database_url, role, new_password), "SELECT 1")[1] == [(1,)]
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            execute(role_url(database_url, role, old_password), "SELECT 1")
    finally:
        run_role_script(database_url, GRAFANA_DB_USER=role, GRAFANA_DB_PASSWORD=old_password)


def test_reader_script_requires_password(database_url: str) -> None:
    result = run_role_script(database_url, GRAFANA_DB_USER=new_role_name())

    assert result.returncode != 0
    assert "The password of role grafana_reader_" in result.stderr
    assert "is missing" in result.stderr


def test_reader_script_default_role_name(database_url: str) -> None:
    result = run_role_script(database_url, GRAFANA_DB_PASSWORD="")

    assert result.returncode != 0
    assert "The password of role grafana_reader is missing." in result.stderr


def test_reader_script_rejects_current_user(stack, database_url: str) -> None:
    owner = make_url(database_url).username

    result = run_role_script(database_url, GRAFANA_DB_USER=owner, GRAFANA_DB_PASSWORD="x")

    assert result.returncode != 0
    assert f"Role {owner} is the user running this script" in result.stderr
    assert stack.scalar("SELECT rolconfig IS NULL FROM pg_roles WHERE rolname = %s", (owner,))


def test_reader_script_rejects_privileged_role(stack, database_url: str) -> None:
    role = new_role_name()
    execute(database_url, pgsql.SQL("CREATE ROLE {} CREATEDB").format(pgsql.Identifier(role)))

    result = run_role_script(database_url, GRAFANA_DB_USER=role, GRAFANA_DB_PASSWORD="x")

    assert result.returncode != 0
    assert f"Role {role} exists and has administrative attributes" in result.stderr
    assert stack.scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (role,)) is False
