"""Tests of the CSV cells and writer of pipeline.export, on rows made in memory."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from pipeline.export import EXPORT_COLUMNS, csv_cell, guard_formula, write_rows


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=HYPERLINK(\"http://127.0.0.1\")", "'=HYPERLINK(\"http://127.0.0.1\")"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("iPhone 15", "iPhone 15"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_guard_formula(value: str, expected: str) -> None:
    assert guard_formula(value) == expected


def test_csv_cell_none_is_empty() -> None:
    assert csv_cell(None) == ""


def test_csv_cell_numbers_stay_numbers() -> None:
    assert csv_cell(Decimal("125.50")) == Decimal("125.50")
    assert csv_cell(-0.25) == -0.25
    assert csv_cell(3) == 3


def test_csv_cell_time_is_iso() -> None:
    moment = datetime(2024, 5, 1, 12, 0, 1, tzinfo=timezone.utc)

    assert csv_cell(moment) == "2024-05-01T12:00:01+00:00"


def test_csv_cell_reasons_joined_and_guarded() -> None:
    assert csv_cell(["high_amount", "velocity"]) == "high_amount;velocity"
    assert csv_cell(["=cmd", "velocity"]) == "'=cmd;velocity"
    assert csv_cell([]) == ""


def test_csv_cell_json_compact() -> None:
    value = [{"feature": "amount", "value": 900.0, "contribution": 0.12}]

    assert csv_cell(value) == '[{"feature":"amount","value":900.0,"contribution":0.12}]'


def test_csv_cell_bool() -> None:
    assert csv_cell(True) == "true"


def row(transaction_id: str, device: str = "iPhone 15") -> tuple:
    values = {name: None for name in EXPORT_COLUMNS}
    values.update(transaction_id=transaction_id, device=device, amount=Decimal("10.00"))
    return tuple(values[name] for name in EXPORT_COLUMNS)


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_write_rows_header_and_values() -> None:
    out = io.StringIO()

    result = write_rows(out, [row("tx-1"), row("tx-2", "=evil()")], max_rows=10)
    lines = read_back(out.getvalue())

    assert result.rows == 2
    assert not result.truncated
    assert lines[0] == list(EXPORT_COLUMNS)
    device = EXPORT_COLUMNS.index("device")
    score = EXPORT_COLUMNS.index("fraud_score")
    assert [line[device] for line in lines[1:]] == ["iPhone 15", "'=evil()"]
    assert [line[score] for line in lines[1:]] == ["", ""]


def test_write_rows_stops_at_cap() -> None:
    out = io.StringIO()

    result = write_rows(out, (row(f"tx-{index}") for index in range(5)), max_rows=3)

    assert result.rows == 3
    assert result.truncated
    assert len(read_back(out.getvalue())) == 4


def test_write_rows_exactly_cap_is_complete() -> None:
    out = io.StringIO()

    result = write_rows(out, [row("tx-1"), row("tx-2")], max_rows=2)

    assert result.rows == 2
    assert not result.truncated
