import time

import numpy as np
import pytest

from models.explain import ModelExplainer
from models.synthetic import simulate_transactions
from models.train import fit_and_evaluate


@pytest.fixture(scope="module")
def transactions():
    return simulate_transactions(rows=5000, users=150, seed=5)


@pytest.mark.parametrize("max_features", [1.0, 0.5, 3])
def test_explain_additive_in_fraud_score(transactions, max_features):
    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 40, "max_features": max_features})
    explanation = ModelExplainer(artifact).explain(transactions.tail(400))

    total = explanation.base_value + explanation.contributions.sum(axis=1).to_numpy()

    np.testing.assert_allclose(total, explanation.fraud_score, rtol=0, atol=1e-6)
    assert (np.sign(explanation.contributions.to_numpy()) == -np.sign(explanation.path_length_values.to_numpy())).all()


def test_explain_one_transaction_fast(transactions):
    artifact, _ = fit_and_evaluate(transactions, {"n_estimators": 100})
    explainer = ModelExplainer(artifact)
    explainer.explain(transactions.tail(5))

    started = time.perf_counter()
    explainer.explain(transactions.tail(1))
    elapsed = time.perf_counter() - started

    assert elapsed < 0.2
