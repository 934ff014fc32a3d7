"""Countries of the simulated card traffic: ISO 3166-1 alpha-2 codes and display names.

Messages carry only the code in ``location`` and ``transaction_location``, so
a location change is a comparison of two codes and never of two spellings.
The name is for display. It is the common English short name (for example
"United States" and "Czechia"), which is sometimes shorter than the ISO 3166
formal short name.

The coordinates are those of each capital, rounded to about 0.1 degree. They
are precise enough to tell a neighbouring country from one on another
continent, which is all that the simulator uses them for.

``sql/002_fraud_pattern.sql`` fills ``shop.countries`` with the same codes and
names, and a unit test checks that both lists agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "COUNTRIES",
    "COUNTRY_BY_CODE",
    "Country",
    "country_label",
    "country_name",
    "distance_km",
]

EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Country:
    """A country: ISO 3166-1 alpha-2 code, English display name and capital coordinates."""

    code: str
    name: str
    latitude: float
    longitude: float


COUNTRIES: tuple[Country, ...] = (
    Country("AE", "United Arab Emirates", 24.5, 54.4),
    Country("AR", "Argentina", -34.6, -58.4),
    Country("AT", "Austria", 48.2, 16.4),
    Country("AU", "Australia", -35.3, 149.1),
    Country("BE", "Belgium", 50.8, 4.4),
    Country("BR", "Brazil", -15.8, -47.9),
    Country("CA", "Canada", 45.4, -75.7),
    Country("CH", "Switzerland", 46.9, 7.4),
    Country("CL", "Chile", -33.4, -70.7),
    Country("CN", "China", 39.9, 116.4),
    Country("CO", "Colombia", 4.7, -74.1),
    Country("CZ", "Czechia", 50.1, 14.4),
    Country("DE", "Germany", 52.5, 13.4),
    Country("DK", "Denmark", 55.7, 12.6),
    Country("DO", "Dominican Republic", 18.5, -69.9),
    Country("EG", "Egypt", 30.0, 31.2),
    Country("ES", "Spain", 40.4, -3.7),
    Country("FI", "Finland", 60.2, 24.9),
    Country("FR", "France", 48.9, 2.4),
    Country("GB", "United Kingdom", 51.5, -0.1),
    Country("GR", "Greece", 38.0, 23.7),
    Country("HK", "Hong Kong", 22.3, 114.2),
    Country("HR", "Croatia", 45.8, 16.0),
    Country("HU", "Hungary", 47.5, 19.0),
    Country("ID", "Indonesia", -6.2, 106.8),
    Country("IE", "Ireland", 53.3, -6.3),
    Country("IL", "Israel", 31.8, 35.2),
    Country("IN", "India", 28.6, 77.2),
    Country("IS", "Iceland", 64.1, -21.9),
    Country("IT", "Italy", 41.9, 12.5),
    Country("JP", "Japan", 35.7, 139.7),
    Country("KE", "Kenya", -1.3, 36.8),
    Country("KR", "South Korea", 37.6, 127.0),
    Country("LU", "Luxembourg", 49.6, 6.1),
    Country("MA", "Morocco", 34.0, -6.8),
    Country("MX", "Mexico", 19.4, -99.1),
    Country("MY", "Malaysia", 3.1, 101.7),
    Country("NG", "Nigeria", 9.1, 7.5),
    Country("NL", "Netherlands", 52.4, 4.9),
    Country("NO", "Norway", 59.9, 10.8),
    Country("NZ", "New Zealand", -41.3, 174.8),
    Country("PE", "Peru", -12.0, -77.0),
    Country("PH", "Philippines", 14.6, 121.0),
    Country("PL", "Poland", 52.2, 21.0),
    Country("PT", "Portugal", 38.7, -9.1),
    Country("RO", "Romania", 44.4, 26.1),
    Country("RU", "Russia", 55.8, 37.6),
    Country("SA", "Saudi Arabia", 24.7, 46.7),
    Country("SE", "Sweden", 59.3, 18.1),
    Country("SG", "Singapore", 1.4, 103.8),
    Country("TH", "Thailand", 13.8, 100.5),
    Country("TR", "Türkiye", 39.9, 32.9),
    Country("UA", "Ukraine", 50.5, 30.5),
    Country("US", "United States", 38.9, -77.0),
    Country("VN", "Vietnam", 21.0, 105.8),
    Country("ZA", "South Africa", -25.7, 28.2),
)

COUNTRY_BY_CODE = MappingProxyType({country.code: country for country in COUNTRIES})


def _country(code: str) -> Country:
    try:
        return COUNTRY_BY_CODE[code]
    except KeyError:
        raise KeyError(
            f"Unknown country code {code!r}. Use an ISO 3166-1 alpha-2 code of "
            "pipeline.countries.COUNTRIES, for example 'DE'."
        ) from None


def country_name(code: str) -> str:
    """Return the display name of ``code``.

    Raises
    ------
    KeyError
        When ``code`` is not in :data:`COUNTRIES`.
    """
    return _country(code).name


def country_label(code: str) -> str:
    """Return ``"DE · Germany"`` for a known code and the value itself for any other.

    Rows written by older producers hold free-text locations, which are shown as they are.
    """
    country = COUNTRY_BY_CODE.get(code)
    return f"{code} · {country.name}" if country is not None else code


def distance_km(first: str, second: str) -> float:
    """Return the great-circle distance in km between the capitals of two countries.

    Uses the haversine formula on a sphere of radius 6,371 km. On the WGS 84
    ellipsoid the distance differs by up to about 0.5%.

    Raises
    ------
    KeyError
        When a code is not in :data:`COUNTRIES`.
    """
    a = _country(first)
    b = _country(second)
    latitude_a, latitude_b = math.radians(a.latitude), math.radians(b.latitude)
    half_chord = (
        math.sin((latitude_b - latitude_a) / 2) ** 2
        + math.cos(latitude_a)
        * math.cos(latitude_b)
        * math.sin(math.radians(b.longitude - a.longitude) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(half_chord))
