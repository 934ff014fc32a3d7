"""Per-user sequence features, computed over a user's transactions in time order.

Every function here is pure and vectorised with numpy: :class:`UserTimeOrder`
puts the rows in (user, time) order once, and each feature is then one pass
over the sorted arrays, without a Python loop over rows.
:func:`models.features.build_features` builds one order and computes all
three features from it. The functions :func:`count_in_window`,
:func:`previous_value` and :func:`is_new_pair` each build their own.

Each feature takes the rows to compute features for (``user``, ``time``
and so on, one entry per row) and a *history*: earlier rows of the same
users, in the same form, that the model saw in training. History rows count
as earlier transactions but get no feature value of their own.

Order of transactions
---------------------
A user's transactions are ordered by time in whole milliseconds. At equal
times, history rows come before rows, history rows keep their order in the
history, and rows keep their input order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["UserTimeOrder", "count_in_window", "is_new_pair", "previous_value"]

# Times are compared in whole milliseconds, which keeps the per-user time
# keys of count_in_window inside int64 for decades of data and many users.
_NS_PER_MS = 1_000_000
_INT64_MAX = np.iinfo(np.int64).max
_UINT16_LIMIT = 1 << 16


def _to_ms(times: np.ndarray) -> np.ndarray:
    return times.astype("datetime64[ns]").astype(np.int64) // _NS_PER_MS


def _window_ms(window: pd.Timedelta) -> int:
    window_ms = int(window / pd.Timedelta(milliseconds=1))
    if window_ms <= 0:
        raise ValueError(f"The velocity window must be positive, got {window}.")
    return window_ms


def _stable_order_by_code(codes: np.ndarray) -> np.ndarray:
    """Return the stable argsort of non-negative integer codes.

    numpy sorts 16-bit integers with a stable radix sort in linear time, so
    codes below 2**32 are sorted in two radix passes (low then high 16 bits)
    instead of one comparison sort of int64 values.
    """
    if codes.size == 0 or codes.max() < _UINT16_LIMIT:
        return np.argsort(codes.astype(np.uint16), kind="stable")
    if codes.max() >= _UINT16_LIMIT * _UINT16_LIMIT:
        return np.argsort(codes, kind="stable")
    order = np.argsort((codes & (_UINT16_LIMIT - 1)).astype(np.uint16), kind="stable")
    high = (codes[order] >> 16).astype(np.uint16)
    return order[np.argsort(high, kind="stable")]


class UserTimeOrder:
    """Rows in (user, time) order, sorted once and shared by the sequence features.

    Parameters
    ----------
    user_codes
        Non-negative integer code of each row's user, as from
        :func:`pandas.factorize`.
    users
        The user of each code: ``users[code]``. History users are looked up
        in it, so it must hold values of the same type as the history.
    time
        Each row's UTC time, ``datetime64``. It is compared in whole
        milliseconds.

    Notes
    -----
    Rows already in time order, as training and the Model page pass them,
    need only a stable radix sort by user. Other rows first take a stable
    comparison sort by time.
    """

    def __init__(self, user_codes: np.ndarray, users: pd.Index, time: np.ndarray) -> None:
        codes = np.asarray(user_codes, dtype=np.int64)
        time_ms = _to_ms(np.asarray(time))
        # A stable sort by user keeps the time order, and the input order at
        # equal times, so rows not yet in time order are sorted by time first.
        if len(time_ms) > 1 and (time_ms[1:] >= time_ms[:-1]).all():
            order = _stable_order_by_code(codes)
        else:
            by_time = np.argsort(time_ms, kind="stable")
            order = by_time[_stable_order_by_code(codes[by_time])]
        self.users = pd.Index(users)
        self.order = order
        self.codes = codes[order]
        self.time_ms = time_ms[order]
        self.same_user_as_previous = np.zeros(len(order), dtype=bool)
        self.same_user_as_previous[1:] = self.codes[1:] == self.codes[:-1]

    @classmethod
    def from_values(cls, user: np.ndarray, time: np.ndarray) -> UserTimeOrder:
        """Build the order from user ids of any hashable type and ``datetime64`` times."""
        codes, users = pd.factorize(np.asarray(user), use_na_sentinel=False)
        return cls(codes, pd.Index(users), time)

    def __len__(self) -> int:
        return len(self.order)

    def to_row_order(self, sorted_values: np.ndarray) -> np.ndarray:
        """Put values computed in (user, time) order back in the input order of the rows."""
        result = np.empty(len(sorted_values), dtype=sorted_values.dtype)
        result[self.order] = sorted_values
        return result

    def _history(self, history_user: np.ndarray, *columns: np.ndarray) -> tuple[np.ndarray, ...]:
        # History rows of users without rows here cannot change any feature, so drop them.
        codes = self.users.get_indexer(np.asarray(history_user, dtype=object))
        known = codes >= 0
        return (codes[known], *(np.asarray(column)[known] for column in columns))

    def _history_keys(
        self, history_codes: np.ndarray, history_ms: np.ndarray, *row_times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Give history rows and row times comparable int64 keys ``user * m + time rank``.

        A time's rank is the number of distinct history times at or before
        it, so ``key(history) <= key(row time)`` exactly when both have the
        same user and the history time is at or before the row time. Ranks,
        unlike millisecond offsets, keep every key far inside int64.

        Returns the stable order of the history keys, the sorted history
        keys, and the keys of each array in ``row_times`` (sorted rows).
        """
        distinct_times = np.unique(history_ms)
        stride = len(distinct_times) + 1
        history_keys = history_codes * stride + np.searchsorted(distinct_times, history_ms, side="right")
        history_order = np.argsort(history_keys, kind="stable")
        row_keys = [self.codes * stride + np.searchsorted(distinct_times, times, side="right") for times in row_times]
        return history_order, history_keys[history_order], row_keys

    def count_in_window(
        self, window: pd.Timedelta, history_user: np.ndarray, history_ms: np.ndarray
    ) -> np.ndarray:
        """Count each row's user's transactions in the window that ends at the row.

        See :func:`count_in_window`. ``history_ms`` contains the history
        times in whole milliseconds.
        """
        window_ms = _window_ms(window)
        if len(self) == 0:
            return np.zeros(0, dtype=np.float64)

        # Rows: give each user a disjoint range of keys, so one searchsorted
        # over the whole sorted array finds each row's window start within
        # its own user.
        start = int(self.time_ms.min())
        stride = int(self.time_ms.max()) - start + window_ms + 1
        n_users = int(self.codes.max()) + 1
        if n_users > _INT64_MAX // stride:
            raise ValueError(
                f"{n_users} users over {stride} ms do not fit int64 time keys. "
                "Compute velocity on a shorter time range."
            )
        keys = self.codes * stride + (self.time_ms - start)
        first_in_window = np.searchsorted(keys, keys - window_ms, side="right")
        counts = np.arange(len(keys)) - first_in_window + 1

        # History: every history row with a time in (t - window, t] comes
        # before the row at t, so it counts.
        history_codes, history_ms = self._history(history_user, history_ms)
        if len(history_codes):
            _, history_keys, (up_to_row, up_to_window_start) = self._history_keys(
                history_codes, history_ms.astype(np.int64), self.time_ms, self.time_ms - window_ms
            )
            counts += np.searchsorted(history_keys, up_to_row, side="right")
            counts -= np.searchsorted(history_keys, up_to_window_start, side="right")
        return self.to_row_order(counts.astype(np.float64))

    def previous(
        self,
        value: np.ndarray,
        history_user: np.ndarray,
        history_ms: np.ndarray,
        history_value: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the value of each user's previous transaction, in row order.

        Returns
        -------
        previous : numpy.ndarray
            The previous transaction's value, with the dtype of ``value``
            and ``history_value`` combined. Undefined where ``has_previous``
            is False.
        has_previous : numpy.ndarray
            bool, False for a user's first transaction.
        """
        value = np.asarray(value)
        sorted_value = value[self.order]
        previous = np.empty(len(self), dtype=np.result_type(value, np.asarray(history_value)))
        previous[1:] = sorted_value[:-1]
        has_previous_row = self.same_user_as_previous
        has_previous = has_previous_row.copy()

        history_codes, history_ms, history_value = self._history(history_user, history_ms, history_value)
        if len(history_codes) and len(self):
            history_ms = history_ms.astype(np.int64)
            history_order, history_keys, (row_keys,) = self._history_keys(history_codes, history_ms, self.time_ms)
            # The user's latest history row at or before the row's time; at
            # equal keys the last one in history order.
            latest = np.searchsorted(history_keys, row_keys, side="right") - 1
            found = latest >= 0
            latest = history_order[np.maximum(latest, 0)]
            found &= history_codes[latest] == self.codes
            # That history row comes right before the row unless an earlier
            # row of the user is later in time. At equal times the row is
            # later, because history comes first.
            previous_row_ms = np.empty(len(self), dtype=np.int64)
            previous_row_ms[1:] = self.time_ms[:-1]
            use_history = found & (~has_previous_row | (history_ms[latest] > previous_row_ms))
            previous[use_history] = history_value[latest[use_history]]
            has_previous |= found
        return self.to_row_order(previous), self.to_row_order(has_previous)

    def is_new_pair(self, item_codes: np.ndarray, history_user: np.ndarray, history_item_codes: np.ndarray) -> np.ndarray:
        """Flag the rows whose (user, item) pair occurs for the first time.

        ``item_codes`` are non-negative integer codes of each row's item, and
        ``history_item_codes`` the codes of the history items in the same
        code space, negative for an item that no row has. See
        :func:`is_new_pair`.
        """
        item_codes = np.asarray(item_codes, dtype=np.int64)
        if len(self) == 0:
            return np.zeros(0, dtype=np.float64)
        n_items = int(max(item_codes.max(), 0)) + 1
        sorted_pairs = self.codes * n_items + item_codes[self.order]
        seen_earlier = pd.Series(sorted_pairs).duplicated().to_numpy()

        history_codes, history_items = self._history(history_user, history_item_codes)
        known_items = history_items >= 0
        history_pairs = history_codes[known_items] * n_items + history_items[known_items]
        known = pd.Series(sorted_pairs).isin(history_pairs).to_numpy()
        return self.to_row_order((~(seen_earlier | known)).astype(np.float64))


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
        When ``window`` is not positive, or when the rows' time span times
        the number of their users does not fit the int64 millisecond keys.
    """
    _window_ms(window)
    if len(user) == 0:
        return np.zeros(0, dtype=np.float64)
    order = UserTimeOrder.from_values(user, time)
    return order.count_in_window(window, history_user, _to_ms(np.asarray(history_time)))


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
    order = UserTimeOrder.from_values(user, time)
    previous, has_previous = order.previous(
        np.asarray(value).astype(object),
        history_user,
        _to_ms(np.asarray(history_time)),
        np.asarray(history_value).astype(object),
    )
    previous[~has_previous] = None
    return previous


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
    order = UserTimeOrder.from_values(user, time)
    item_codes, items = pd.factorize(np.asarray(item), use_na_sentinel=False)
    history_item_codes = pd.Index(items).get_indexer(np.asarray(history_item, dtype=object))
    return order.is_new_pair(item_codes, history_user, history_item_codes)
