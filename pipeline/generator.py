"""Former home of the transaction generator, kept so that old imports keep working.

The simulator now lives in :mod:`pipeline.simulator`: the population, the
fraud patterns and the generator. Import from there in new code.
"""

from pipeline.simulator import (
    DEFAULT_FRAUD_RATIO,
    DEFAULT_MEAN_INTERVAL_S,
    DEFAULT_USER_COUNT,
    DEVICES,
    FRAUD_DEVICES,
    FRAUD_PATTERNS,
    FRAUD_REASONS,
    MAX_USER_COUNT,
    TransactionGenerator,
)

__all__ = [
    "DEFAULT_FRAUD_RATIO",
    "DEFAULT_MEAN_INTERVAL_S",
    "DEFAULT_USER_COUNT",
    "DEVICES",
    "FRAUD_DEVICES",
    "FRAUD_PATTERNS",
    "FRAUD_REASONS",
    "MAX_USER_COUNT",
    "TransactionGenerator",
]
