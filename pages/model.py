"""Model page: train the Isolation Forest on the stored transactions and show its metrics."""

import logging
import math

import streamlit as st
from psycopg2 import Error as Psycopg2Error
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from pipeline.health import database_error_message, postgres_address
from pipeline.settings import get_settings, redact_url

logger = logging.getLogger(__name__)

# The input limits of models.train.TrainingParams, repeated here because that
# module is imported only when training starts.
MAX_N_ESTIMATORS = 10_000
MAX_RANDOM_STATE = 2**32 - 1

settings = get_settings()

for state_key in ("model_request", "model_result", "model_error"):
    if state_key not in st.session_state:
        st.session_state[state_key] = None


def parse_max_samples(raw: str) -> str | int | float:
    """Parse the max_samples input: ``auto``, a row count, or a share of rows in (0, 1]."""
    value = raw.strip().lower()
    if value == "auto":
        return "auto"
    if value.isdigit() and int(value) >= 1:
        return int(value)
    try:
        share = float(value)
    except ValueError:
        share = math.nan
    if 0 < share <= 1:
        return share
    raise ValueError(
        f"Max samples must be auto, a whole number of rows >= 1, or a share of rows "
        f"from 0 to 1, got {raw!r}."
    )


def request_training() -> None:
    st.session_state.model_result = None
    st.session_state.model_error = None
    try:
        max_samples = parse_max_samples(st.session_state.model_max_samples)
    except ValueError as exc:
        st.session_state.model_error = str(exc)
        return
    st.session_state.model_request = {
        "n_estimators": int(st.session_state.model_n_estimators),
        "contamination": float(st.session_state.model_contamination),
        "random_state": int(st.session_state.model_random_state),
        "max_samples": max_samples,
    }


def train(parameters: dict) -> tuple[dict | None, str | None]:
    """Run models.train.train_model; return its metrics or a plain error sentence."""
    # Imported here so the page renders even where models.train is missing or broken.
    try:
        from models.train import TrainingError, train_model
    except ImportError as exc:
        logger.error("Importing models.train failed: %s", exc)
        return None, (
            f"Training is not available because models.train cannot be imported ({exc}). "
            "Check that models/train.py is present in this installation."
        )

    try:
        return train_model(settings.database_url, **parameters), None
    except TrainingError as exc:
        return None, str(exc)
    except (SQLAlchemyError, Psycopg2Error) as exc:
        return None, database_error_message(exc, settings.database_url)
    except ValueError as exc:
        return None, f"Training failed: {exc} Adjust the parameters and try again."
    except Exception as exc:  # The page shows a sentence; the server log keeps the traceback.
        logger.exception("Training failed with parameters %s", parameters)
        return None, (
            f"Training failed with an unexpected {type(exc).__name__}: {exc}. "
            "The Streamlit server log has the details."
        )


def format_metric(value: object, spec: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return "n/a"


def show_result(result: dict) -> None:
    rows, flagged, precision, recall, roc_auc = st.columns(5)
    rows.metric("Training rows", format_metric(result.get("rows"), ","))
    flagged.metric("Share flagged", format_metric(result.get("share_flagged"), ".1%"))
    precision.metric("Precision", format_metric(result.get("precision"), ".3f"))
    recall.metric("Recall", format_metric(result.get("recall"), ".3f"))
    roc_auc.metric("ROC AUC", format_metric(result.get("roc_auc"), ".3f"))
    st.caption(
        "Precision and recall compare the transactions the model flags with the is_fraud "
        "labels of the stored transactions. ROC AUC compares its fraud scores with them."
    )
    # train_model explains each metric it could not compute, for example "n/a" above.
    for note in result.get("notes") or ():
        st.info(note)
    if result.get("model_path"):
        st.markdown(f"Model saved to `{result['model_path']}`.")


st.title("Model")
try:
    database_address = postgres_address(settings.database_url)
except (ArgumentError, ValueError):
    database_address = redact_url(settings.database_url)
st.caption(f"Trains an Isolation Forest on the transactions in PostgreSQL at {database_address}.")

with st.form("train_form"):
    estimators_column, contamination_column, seed_column, samples_column = st.columns(4)
    estimators_column.number_input(
        "Trees (n_estimators)",
        min_value=1,
        max_value=MAX_N_ESTIMATORS,
        value=100,
        step=10,
        key="model_n_estimators",
        help="Number of isolation trees in the forest.",
    )
    contamination_column.number_input(
        "Contamination",
        min_value=0.001,
        max_value=0.5,
        value=0.1,
        step=0.01,
        format="%.3f",
        key="model_contamination",
        help="Expected share of outliers, from 0.001 to 0.5. It sets the score threshold.",
    )
    seed_column.number_input(
        "Random state",
        min_value=0,
        max_value=MAX_RANDOM_STATE,
        value=42,
        step=1,
        key="model_random_state",
        help="Whole number that makes training repeatable.",
    )
    samples_column.text_input(
        "Max samples",
        value="auto",
        key="model_max_samples",
        help="Rows drawn for each tree: auto, a whole number such as 256, or a share such as 0.5.",
    )
    st.form_submit_button("Train", on_click=request_training, icon=":material/model_training:")

pending = st.session_state.model_request
if pending is not None:
    st.session_state.model_request = None
    with st.spinner("Training the model on the stored transactions..."):
        st.session_state.model_result, st.session_state.model_error = train(pending)

if st.session_state.model_error:
    st.error(st.session_state.model_error, icon=":material/error:")
elif st.session_state.model_result:
    show_result(st.session_state.model_result)
