import pytest

from models.reviewed import REVIEWED_KEYS, reviewed_precision, reviewed_precision_from_counts
from models.params import TrainingError


@pytest.mark.parametrize(
    ("confirmed_fraud", "false_positive", "expected"),
    [(3, 1, 0.75), (0, 4, 0.0), (5, 0, 1.0)],
)
def test_reviewed_precision_from_counts(confirmed_fraud: int, false_positive: int, expected: float) -> None:
    result = reviewed_precision_from_counts(7, confirmed_fraud, false_positive)

    assert set(result) == set(REVIEWED_KEYS)
    assert result["reviewed_precision"] == expected
    assert result["reviewed_confirmed_fraud"] == confirmed_fraud
    assert result["reviewed_false_positive"] == false_positive
    assert result["reviewed_note"] is None


def test_reviewed_precision_no_reviews_note() -> None:
    result = reviewed_precision_from_counts(7, 0, 0)

    assert result["reviewed_precision"] is None
    assert "No alert of model version 7 has been reviewed" in result["reviewed_note"]
    assert "Review its alerts on the Fraud queue page." in result["reviewed_note"]


def test_reviewed_precision_database_closed() -> None:
    with pytest.raises(TrainingError, match="Could not connect to the database at postgresql://fraud:\\*\\*\\*@127.0.0.1:1/"):
        reviewed_precision("postgresql://fraud:secret@127.0.0.1:1/fraud", 3)
