"""The transaction simulator: a population of card holders, their traffic, and fraud patterns.

- :mod:`~pipeline.simulator.population` draws the users once, with Faker.
- :mod:`~pipeline.simulator.patterns` defines the fraud patterns, the
  legitimate look-alikes, their parameters and the pattern mix.
- :mod:`~pipeline.simulator.clock` keeps the simulated event time.
- :mod:`~pipeline.simulator.generator` makes the message stream.

``docs/fraud-patterns.md`` describes the model for analysts and data scientists.
"""

from pipeline.simulator.generator import (
    DEFAULT_FRAUD_RATIO,
    DEFAULT_MEAN_INTERVAL_S,
    DEFAULT_POPULATION_SEED,
    TransactionGenerator,
)
from pipeline.simulator.patterns import (
    DEFAULT_PATTERN_MIX,
    FRAUD_DEVICES,
    FRAUD_PATTERNS,
    FRAUD_REASONS,
    PATTERN_REASONS,
    FraudParameters,
    LookAlikeParameters,
    normalise_pattern_mix,
    parse_pattern_mix,
)
from pipeline.simulator.population import (
    DEFAULT_USER_COUNT,
    DEVICES,
    MAX_USER_COUNT,
    PHONES,
    Population,
    User,
    build_population,
)

__all__ = [
    "DEFAULT_FRAUD_RATIO",
    "DEFAULT_MEAN_INTERVAL_S",
    "DEFAULT_PATTERN_MIX",
    "DEFAULT_POPULATION_SEED",
    "DEFAULT_USER_COUNT",
    "DEVICES",
    "FRAUD_DEVICES",
    "FRAUD_PATTERNS",
    "FRAUD_REASONS",
    "MAX_USER_COUNT",
    "PATTERN_REASONS",
    "PHONES",
    "FraudParameters",
    "LookAlikeParameters",
    "Population",
    "TransactionGenerator",
    "User",
    "build_population",
    "normalise_pattern_mix",
    "parse_pattern_mix",
]
