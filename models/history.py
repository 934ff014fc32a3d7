"""Per-user sequence features, computed over a user's transactions in time order.

Every function here is pure and vectorised with numpy: rows are put in
(user, time) order once with :func:`numpy.lexsort`, and each feature is then
one pass over the sorted arrays, without a Python loop over rows.

Each function takes the rows to compute features for (``user``, ``time``
and so on, one entry per row) and a *history*: earlier rows of the same
users, in the same form, that the model saw in training. History rows count
as earlier transactions but get no feature value of their own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["count_in_window", "is_new_pair", "previous_value"]

# Times are compared in whole milliseconds, which keeps the per-user time
# keys of count_in_window inside int64 for decades of data and many users.
_NS_PER_MS = 1_000_000
_INT64_MAX = np.iinfo(np.int64).max


def _codes(*arrays: np.ndarray) -> list[np.ndarray]:
    # One factorisation over all arrays, so equal values get equal codes.
    codes, _ = pd.factorize(np.concatenate(arrays))
    bounds = np.cumsum([len(array) for array in arrays])[:-1]
    return np.split(codes, bounds)


def _to_ms(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[ns]").astype(np.int64) // _NS_PER_MS


def _sorted_union(
    user: np.ndarray, time: np.ndarray, history_user: np.ndarray, history_time: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Put history rows and rows in (user, time) order.

    Returns the order (positions into the concatenation history + rows),
    the user codes and the millisecond times in that order, and a mask of
    the sorted positions that are rows rather than history.
    """
    history_codes, row_codes = _codes(history_user, user)
    codes = np.concatenate([history_codes, row_codes])
    times = np.concatenate([_to_ms(history_time), _to_ms(time)])
    is_row = np.concatenate([np.zeros(len(history_user), bool), np.ones(len(user), bool)])

    # History first at equal times, then the input order: a stable tie-break.
    order = np.lexsort((is_row, times, codes))
    return order, codes[order], times[order], is_row[order]


def _scatter_back(order: np.ndarray, is_row: np.ndarray, values: np.ndarray, n_history: int) -> np.ndarray:
    # Map values computed in sorted order back to the input order of the rows.
    result = np.empty(int(is_row.sum()), dtype=values.dtype)
    result[order[is_row] - n_history] = values[is_row]
    return result


def count_in_window(
    user: np.ndarray,
    time: np.ndarray,
    window: pd.Timedelta,
    history_user: np.ndarray,
    history_time: np.ndarray,
) -> np.ndarray:
    """Count each row's user's transactions in the window that ends at the row.

    A transaction at time ``s`` counts for a row at time ``t`` when
    ``t - window < s <= t`` and it comes at or before the row in time order,
    so the row itself is counted and every count is at least 1.

    Parameters
    ----------
    user, time
        One user id and one ``datetime64`` UTC time per row.
    window
        Length of the window, a positive :class:`pandas.Timedelta`.
    history_user, history_time
        Earlier transactions of the same users, counted but not returned.

    Returns
    -------
    numpy.ndarray
        float64 counts, in the order of ``user``.

    Raises
    ------
    ValueError
        When ``window`` is not positive, or when the time span times the
        number of users does not fit the int64 millisecond keys.
    """
    window_ms = int(window / pd.Timedelta(milliseconds=1))
    if window_ms <= 0:
        raise ValueError(f"The velocity window must be positive, got {window}.")
    if len(user) == 0:
        return np.zeros(0, dtype=np.float64)

    order, codes, times, is_row = _sorted_union(user, time, history_user, history_time)

    # Give each user a disjoint range of keys, so one searchsorted over the
    # whole array finds each row's window start within its own user.
    start = times.min()
    stride = int(times.max() - start) + window_ms + 1
    n_users = int(codes.max()) + 1
    if n_users > _INT64_MAX // stride:
        raise ValueError(
            f"{n_users} users over {stride} ms do not fit int64 time keys. "
            "Compute velocity on a shorter time range."
        )
    keys = codes.astype(np.int64) * stride + (times - start)

    positions = np.arange(len(keys))
    first_in_window = np.searchsorted(keys, keys - window_ms, side="right")
    counts = (positions - first_in_window + 1).astype(np.float64)
    return _scatter_back(order, is_row, counts, len(history_user))


def previous_value(
    user: np.ndarray,
    time: np.ndarray,
    value: np.ndarray,
    history_user: np.ndarray,
    history_time: np.ndarray,
    history_value: np.ndarray,
) -> np.ndarray:
    """Return the value of each user's previous transaction, or None for a first one.

    Parameters
    ----------
    user, time, value
        One user id, ``datetime64`` UTC time and value (for example a
        country) per row.
    history_user, history_time, history_value
        Earlier transactions of the same users.

    Returns
    -------
    numpy.ndarray
        object array in the order of ``user``. An entry is None when the user
        has no earlier transaction in the history or in the rows.
    """
    if len(user) == 0:
        return np.empty(0, dtype=object)
    order, codes, _, is_row = _sorted_union(user, time, history_user, history_time)
    values = np.concatenate([history_value.astype(object), value.astype(object)])[order]

    previous = np.empty(len(values), dtype=object)
    previous[1:] = values[:-1]
    previous[0] = None
    first_of_user = np.ones(len(codes), dtype=bool)
    first_of_user[1:] = codes[1:] != codes[:-1]
    previous[first_of_user] = None
    return _scatter_back(order, is_row, previous, len(history_user))


def is_new_pair(
    user: np.ndarray,
    time: np.ndarray,
    item: np.ndarray,
    history_user: np.ndarray,
    history_item: np.ndarray,
) -> np.ndarray:
    """Flag the rows whose (user, item) pair occurs for the first time.

    A pair is new unless it is in the history or an earlier row (in time
    order) has it. Typical items are devices or merchants.

    Returns
    -------
    numpy.ndarray
        float64, 1.0 for a new pair and 0.0 otherwise, in the order of ``user``.
    """
    if len(user) == 0:
        return np.zeros(0, dtype=np.float64)
    history_users, row_users = _codes(history_user, user)
    history_items, row_items = _codes(history_item, item)
    n_items = int(max(history_items.max(initial=0), row_items.max(initial=0))) + 1
    history_pairs = history_users.astype(np.int64) * n_items + history_items
    row_pairs = row_users.astype(np.int64) * n_items + row_items

    order = np.lexsort((np.arange(len(user)), _to_ms(time), row_users))
    seen_earlier = np.zeros(len(user), dtype=bool)
    seen_earlier[order] = pd.Series(row_pairs[order]).duplicated().to_numpy()
    known = np.isin(row_pairs, history_pairs)
    return (~(seen_earlier | known)).astype(np.float64)
