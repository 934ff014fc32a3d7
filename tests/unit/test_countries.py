"""The country list: codes, names, distances, and agreement with the SQL migration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.countries import (
    COUNTRIES,
    COUNTRY_BY_CODE,
    country_label,
    country_name,
    distance_km,
)
from pipeline.simulator.population import HOME_COUNTRIES

MIGRATION = Path(__file__).resolve().parents[2] / "sql" / "002_fraud_pattern.sql"
# One ('XX', 'Name') row of the INSERT; '' is an escaped quote in SQL.
SQL_ROW = re.compile(r"\(\s*'([^']*)'\s*,\s*'((?:[^']|'')*)'\s*\)")


def test_countries_codes_are_alpha_2_and_unique() -> None:
    codes = [country.code for country in COUNTRIES]

    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[A-Z]{2}", code) for code in codes)


def test_countries_names_unique_and_coordinates_valid() -> None:
    names = [country.name for country in COUNTRIES]

    assert len(names) == len(set(names))
    for country in COUNTRIES:
        assert country.name.strip()
        assert -90 <= country.latitude <= 90
        assert -180 <= country.longitude <= 180


def test_countries_match_sql_migration() -> None:
    sql = MIGRATION.read_text(encoding="utf-8")
    insert = sql[sql.index("INSERT INTO shop.countries") :]
    rows = {code: name.replace("''", "'") for code, name in SQL_ROW.findall(insert)}

    assert rows == {country.code: country.name for country in COUNTRIES}


def test_countries_include_every_home_country() -> None:
    assert set(HOME_COUNTRIES) <= set(COUNTRY_BY_CODE)


def test_country_name_known_code() -> None:
    assert country_name("DE") == "Germany"


def test_country_name_unknown_code_raises() -> None:
    with pytest.raises(KeyError, match=r"Unknown country code 'Germany'\. Use an ISO 3166-1 alpha-2"):
        country_name("Germany")


def test_country_label_known_and_free_text() -> None:
    assert country_label("FR") == "FR · France"
    assert country_label("London") == "London"


@pytest.mark.parametrize(
    "first, second, low, high",
    [
        ("DE", "FR", 850, 900),
        ("GB", "US", 5800, 6000),
        ("AU", "NZ", 2200, 2400),
        ("ES", "AR", 9900, 10_200),
    ],
)
def test_distance_km_capitals(first: str, second: str, low: float, high: float) -> None:
    assert low <= distance_km(first, second) <= high


def test_distance_km_symmetric_and_zero_to_itself() -> None:
    assert distance_km("JP", "BR") == pytest.approx(distance_km("BR", "JP"))
    assert distance_km("JP", "JP") == 0.0
