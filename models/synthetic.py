"""Synthetic labelled transactions from users with history, for tests and benchmarks.

:func:`simulate_transactions` draws a stream in which each user has a home
country (ISO 3166-1 alpha-2), one or two usual devices, a typical amount and
daytime habits. A share of the transactions is fraud of one of
:data:`FRAUD_PATTERNS`, written to ``fraud_pattern`` (None for legitimate
rows), the same column the pipeline stores. It is vectorised with numpy and
does no I/O, so a million rows take seconds.

It is not the producer's generator: the model code and its tests use it to
get data with known fraud patterns without depending on the pipeline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["FRAUD_PATTERNS", "simulate_transactions"]

FRAUD_PATTERNS = ("high_amount", "geo_jump", "new_device", "card_testing", "account_takeover")

COUNTRIES = np.array(["FR", "DE", "IT", "ES", "PT", "NL", "BE", "PL", "SE", "IE"])
FOREIGN_COUNTRIES = np.array(["NG", "BR", "RU", "VN", "PH", "MX", "TR", "ZA"])
DEVICES = np.array(
    ["iPhone 15", "iPhone 13", "Pixel 8", "Galaxy S24", "Galaxy A54", "MacBook", "ThinkPad",
     "iPad", "Surface", "Xiaomi 13"]
)
DEVICE_POPULARITY = np.array([0.18, 0.14, 0.1, 0.14, 0.1, 0.1, 0.08, 0.07, 0.05, 0.04])

CARD_TESTING_BURST = 4


def simulate_transactions(
    rows: int = 20_000,
    users: int = 500,
    fraud_share: float = 0.02,
    days: float = 30.0,
    seed: int = 0,
    start: str = "2026-01-01T00:00:00Z",
) -> pd.DataFrame:
    """Draw labelled transactions of users with history.

    Parameters
    ----------
    rows
        Number of transactions, at least 10.
    users
        Number of users, from 1 to ``rows``.
    fraud_share
        Share of rows that are fraud, in [0, 0.5]. Card testing adds
        :data:`CARD_TESTING_BURST` fraud rows per case, so the final share
        is somewhat higher.
    days
        Length of the time range in days.
    seed
        Seed of the random generator; the same arguments give the same rows.
    start
        UTC start of the time range.

    Returns
    -------
    pandas.DataFrame
        Columns ``transaction_id``, ``user_id``, ``event_time`` (UTC),
        ``first_name``, ``last_name``, ``location``, ``transaction_location``,
        ``amount``, ``device``, ``is_fraud``, ``fraud_pattern``, in time order.

    Raises
    ------
    ValueError
        When an argument is outside its range.
    """
    if rows < 10 or not 1 <= users <= rows:
        raise ValueError(f"rows must be at least 10 and users from 1 to rows, got {rows} and {users}.")
    if not 0.0 <= fraud_share <= 0.5:
        raise ValueError(f"fraud_share must be in [0, 0.5], got {fraud_share}.")
    rng = np.random.default_rng(seed)

    # Users: home country, one or two devices, typical amount, active hours.
    home = rng.choice(COUNTRIES, users)
    first_device = rng.choice(len(DEVICES), users, p=DEVICE_POPULARITY)
    second_device = np.where(
        rng.random(users) < 0.5, rng.choice(len(DEVICES), users, p=DEVICE_POPULARITY), first_device
    )
    typical_amount = np.exp(rng.normal(np.log(40.0), 0.9, users))
    activity = rng.pareto(2.0, users) + 1.0

    # Legitimate rows: a user by activity, a daytime hour, a usual device.
    user = rng.choice(users, rows, p=activity / activity.sum())
    day = rng.integers(0, max(int(days), 1), rows)
    hour = np.clip(rng.normal(14.0, 3.5, rows), 6, 23.99)
    seconds = (day * 86_400 + hour * 3_600).astype(np.int64)
    device = np.where(rng.random(rows) < 0.6, first_device[user], second_device[user])
    amount = typical_amount[user] * np.exp(rng.normal(0.0, 0.5, rows))
    place = np.where(rng.random(rows) < 0.02, rng.choice(COUNTRIES, rows), home[user])
    pattern = np.full(rows, None, dtype=object)

    # Fraud: each fraud row gets one pattern that changes some of its fields.
    is_fraud = rng.random(rows) < fraud_share
    chosen = rng.choice(len(FRAUD_PATTERNS), rows)
    pattern[is_fraud] = np.array(FRAUD_PATTERNS, dtype=object)[chosen[is_fraud]]

    def rows_of(name: str) -> np.ndarray:
        return np.flatnonzero(pattern == name)

    high = rows_of("high_amount")
    amount[high] = typical_amount[user[high]] * rng.uniform(6.0, 25.0, len(high))

    jump = rows_of("geo_jump")
    place[jump] = rng.choice(FOREIGN_COUNTRIES, len(jump))

    new = rows_of("new_device")
    device[new] = (first_device[user[new]] + rng.integers(1, len(DEVICES), len(new))) % len(DEVICES)
    device[new] = np.where(device[new] == second_device[user[new]], (device[new] + 1) % len(DEVICES), device[new])

    takeover = rows_of("account_takeover")
    device[takeover] = (second_device[user[takeover]] + 3) % len(DEVICES)
    place[takeover] = rng.choice(FOREIGN_COUNTRIES, len(takeover))
    amount[takeover] = typical_amount[user[takeover]] * rng.uniform(3.0, 10.0, len(takeover))
    seconds[takeover] = day[takeover] * 86_400 + rng.integers(1 * 3_600, 5 * 3_600, len(takeover))

    # Card testing: a burst of small amounts from the same user within minutes.
    testing = rows_of("card_testing")
    amount[testing] = rng.uniform(0.5, 3.0, len(testing))
    burst = np.repeat(testing, CARD_TESTING_BURST)
    frame = pd.DataFrame(
        {
            "user": np.concatenate([user, user[burst]]),
            "seconds": np.concatenate(
                [seconds, seconds[burst] + rng.integers(5, 240, len(burst))]
            ),
            "device": np.concatenate([device, device[burst]]),
            "place": np.concatenate([place, place[burst]]),
            "amount": np.concatenate([amount, rng.uniform(0.5, 3.0, len(burst))]),
            "pattern": np.concatenate([pattern, pattern[burst]]),
        }
    ).sort_values(["seconds", "user"], kind="stable", ignore_index=True)

    n = len(frame)
    user_ids = np.char.add("user-", frame["user"].to_numpy().astype(str))
    return pd.DataFrame(
        {
            "transaction_id": [f"sim-{seed}-{i:08d}" for i in range(n)],
            "user_id": user_ids,
            "event_time": pd.Timestamp(start) + pd.to_timedelta(frame["seconds"].to_numpy(), unit="s"),
            "first_name": "Sim",
            "last_name": user_ids,
            "location": home[frame["user"].to_numpy()],
            "transaction_location": frame["place"].to_numpy(),
            "amount": np.round(frame["amount"].to_numpy(), 2),
            "device": DEVICES[frame["device"].to_numpy()],
            "is_fraud": frame["pattern"].notna().to_numpy().astype(np.int64),
            "fraud_pattern": frame["pattern"].to_numpy(),
        }
    )
