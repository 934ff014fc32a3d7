"""Expand the Grafana PostgreSQL macros of a panel query, as Grafana's backend does.

The tests run the dashboard's queries against the real schema without a
Grafana server, so this module rewrites a query the way Grafana 12's
PostgreSQL datasource does for a fixed time range and interval:

1. ``$__interval_ms`` and ``$__interval`` become the interval, in
   milliseconds and in Grafana's interval text (``1m``, ``30s``), also
   inside quotes such as ``INTERVAL '$__interval'``.
2. Each ``$__name(args)`` macro becomes SQL (``pkg/tsdb/grafana-postgresql-datasource/macros.go``):

   - ``$__timeFilter(col)`` -> ``col BETWEEN 'from' AND 'to'``
   - ``$__timeFrom()`` and ``$__timeTo()`` -> ``'from'`` and ``'to'``
   - ``$__timeGroup(col, interval[, fill])`` -> ``floor(extract(epoch from col)/S)*S``
   - ``$__timeGroupAlias(col, interval[, fill])`` -> the same plus ``AS "time"``

Times are UTC in RFC 3339. The optional fill argument only makes Grafana add
the empty buckets after the query returns, so it changes no SQL here.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["MacroError", "expand_macros", "format_interval", "parse_interval"]

# Grafana's own pattern: a macro's arguments cannot contain ")".
MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
INTERVAL = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 365 * 86400}


class MacroError(ValueError):
    """A query uses a macro or variable that Grafana would reject or leave unexpanded."""


def format_interval(interval: timedelta) -> str:
    """Return ``interval`` as Grafana writes ``$__interval``, truncated to its largest unit.

    Grafana's ``gtime.FormatInterval`` turns 90 s into ``1m``. Its interval
    calculator rounds to whole units (1m, 2m, 5m, ..., 1h, 1d) first, so
    dashboards normally see no truncation.
    """
    milliseconds = round(interval.total_seconds() * 1000)
    if milliseconds <= 0:
        raise MacroError(f"The interval must be positive, got {interval}.")
    for unit in ("y", "d", "h", "m", "s"):
        unit_ms = round(UNIT_SECONDS[unit] * 1000)
        if milliseconds >= unit_ms:
            return f"{milliseconds // unit_ms}{unit}"
    return f"{milliseconds}ms"


def parse_interval(text: str) -> float:
    """Return the seconds of an interval such as ``'5m'`` or ``30s``, quotes allowed."""
    match = INTERVAL.fullmatch(text.strip().strip("'"))
    if match is None:
        raise MacroError(f"Invalid interval {text!r}. Use a whole number and ms, s, m, h, d, w or y.")
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise MacroError(f"Time range bounds must be timezone-aware, got {moment.isoformat()}.")
    text = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def _seconds_text(seconds: float) -> str:
    # Go's %v of a float64: 60 -> "60", 0.5 -> "0.5".
    return f"{seconds:g}"


def expand_macros(sql: str, start: datetime, end: datetime, interval: timedelta) -> str:
    """Return ``sql`` with Grafana's variables and macros expanded.

    Raises
    ------
    MacroError
        When a macro is unknown or lacks arguments, an interval is invalid,
        or a ``$`` variable is left that Grafana would not expand.
    """
    sql = sql.replace("$__interval_ms", str(round(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_interval(interval))
    time_from, time_to = _rfc3339(start), _rfc3339(end)

    def expand(match: re.Match[str]) -> str:
        name = match.group(1)
        arguments = [argument.strip() for argument in match.group(2).split(",")]
        # Grafana reads "$__timeGroup(...)," as the alias form, for dashboards
        # written before Grafana 5.3.
        if name == "__timeGroup" and sql[match.end() : match.end() + 1] == ",":
            name = "__timeGroupAlias"
        if name == "__timeFilter":
            return f"{_column(name, arguments)} BETWEEN '{time_from}' AND '{time_to}'"
        if name == "__timeFrom":
            return f"'{time_from}'"
        if name == "__timeTo":
            return f"'{time_to}'"
        if name in ("__timeGroup", "__timeGroupAlias"):
            if len(arguments) not in (2, 3):
                raise MacroError(f"Macro ${name} takes a column, an interval and an optional fill value.")
            seconds = _seconds_text(parse_interval(arguments[1]))
            group = f"floor(extract(epoch from {arguments[0]})/{seconds})*{seconds}"
            return group + ' AS "time"' if name == "__timeGroupAlias" else group
        raise MacroError(f"Unknown macro ${name} in the query.")

    expanded = MACRO.sub(expand, sql)
    if "$" in expanded:
        raise MacroError(f"The query still contains a $ variable after expansion: {expanded}")
    return expanded


def _column(name: str, arguments: list[str]) -> str:
    if not arguments or not arguments[0]:
        raise MacroError(f"Macro ${name} needs a time column argument.")
    return arguments[0]
