"""Model page: train, evaluate, tune the threshold, explain and promote Isolation Forest models.

This file contains only UI code. Training, scoring, metrics and the registry live in
``models/``, and the figures come from :mod:`models.charts`. Scores are
``fraud_score`` values, higher is more suspicious, and a transaction is
flagged when ``fraud_score > threshold``.
"""

import dataclasses
import logging
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st
from sqlalchemy.exc import ArgumentError

from components.frame import require_app_frame
from models import charts, lab, registry, reviewed
from models.artifact import IncompatibleModelError, flag
from models.features import DEFAULT_FEATURE_SET, FEATURE_SETS
from models.metrics import metrics_at_threshold
from models.params import MAX_LIMIT, MAX_N_ESTIMATORS, MAX_RANDOM_STATE, TrainingError, TrainingParams
from pipeline.health import postgres_address
from pipeline.settings import get_settings, redact_url

logger = logging.getLogger(__name__)

# Rows of the evaluation window that the global SHAP view explains, because
# SHAP on an Isolation Forest costs far more per row than scoring.
SHAP_SAMPLE_ROWS = 500
# Highest-scored transactions offered in the transaction picker.
PICKER_ROWS = 50
DEFAULT_EVALUATION_ROWS = 50_000

require_app_frame("model")
settings = get_settings()
DATABASE_URL = settings.database_url

for state_key in ("model_request", "model_result", "model_error", "model_notice", "model_action_error"):
    if state_key not in st.session_state:
        st.session_state[state_key] = None


# ---- Cached data -----------------------------------------------------------


@st.cache_data(ttl=30, show_spinner=False)
def cached_versions(database_url: str) -> tuple[pd.DataFrame, int | None]:
    versions = registry.list_versions(database_url)
    return versions, registry.production_version(database_url)


@st.cache_resource(max_entries=4, show_spinner=False)
def cached_artifact(database_url: str, version: int) -> dict[str, Any]:
    # A version's artifact never changes, so one copy is shared by all sessions.
    return registry.load_version(database_url, version)[1]


@st.cache_data(ttl=300, max_entries=8, show_spinner="Reading the evaluation window...")
def cached_window(database_url: str, start: str | None, end: str | None, limit: int) -> pd.DataFrame:
    return lab.load_evaluation_window(database_url, start, end, limit)


@st.cache_data(ttl=300, max_entries=8, show_spinner="Scoring the evaluation window...")
def cached_scores(
    database_url: str, version: int, start: str | None, end: str | None, limit: int
) -> tuple[np.ndarray, pd.DataFrame]:
    return lab.score_window(cached_artifact(database_url, version), cached_window(database_url, start, end, limit))


@st.cache_data(ttl=30, show_spinner=False)
def cached_reviewed_precision(database_url: str, version: int) -> dict[str, Any]:
    return reviewed.reviewed_precision(database_url, version)


@st.cache_resource(max_entries=2, show_spinner="Building the SHAP explainer...")
def cached_explainer(database_url: str, version: int) -> Any:
    from models.explain import ModelExplainer

    return ModelExplainer(cached_artifact(database_url, version))


@st.cache_data(ttl=300, max_entries=4, show_spinner="Computing SHAP values...")
def cached_global_shap(
    database_url: str, version: int, start: str | None, end: str | None, limit: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    _, features = cached_scores(database_url, version, start, end, limit)
    sample = features.sample(min(SHAP_SAMPLE_ROWS, len(features)), random_state=0)
    explanation = cached_explainer(database_url, version).explain_features(sample)
    return explanation.contributions, explanation.features


@st.cache_data(ttl=300, max_entries=4, show_spinner="Comparing the versions...")
def cached_comparison(
    database_url: str, versions: tuple[int, int], start: str | None, end: str | None, limit: int
) -> pd.DataFrame:
    artifacts = {version: cached_artifact(database_url, version) for version in versions}
    return lab.comparison_table(artifacts, cached_window(database_url, start, end, limit))


# ---- Callbacks ---------------------------------------------------------------


def as_request(params: TrainingParams) -> dict[str, Any]:
    # A plain dict, because Streamlit re-imports the project's modules after
    # a source file changes, and a TrainingParams made by an earlier run's
    # callback would then fail isinstance checks of the new class.
    return dataclasses.asdict(params)


def request_training() -> None:
    st.session_state.model_result = None
    st.session_state.model_error = None
    form = {name: st.session_state[f"model_{name}"] for name in (
        "n_estimators", "max_samples", "contamination", "max_features", "bootstrap", "random_state",
        "feature_set", "novelty", "holdout", "limit", "start", "end",
    )}
    try:
        st.session_state.model_request = as_request(lab.training_params(form))
    except ValueError as exc:
        st.session_state.model_error = str(exc)


def request_retraining(parameters: dict[str, Any]) -> None:
    st.session_state.model_result = None
    try:
        st.session_state.model_request = as_request(TrainingParams(**parameters))
    except (TypeError, ValueError) as exc:
        st.session_state.model_error = (
            f"The stored parameters cannot be reused ({exc}). Set them in the Train tab instead."
        )


def run_registry_action(action: str, version: int | None = None) -> None:
    st.session_state.model_notice = None
    st.session_state.model_action_error = None
    try:
        if action == "promote":
            registry.promote(DATABASE_URL, version)
            st.session_state.model_notice = f"Version {version} is now in production."
        else:
            restored = registry.rollback(DATABASE_URL)
            st.session_state.model_notice = f"Rolled back: version {restored} is in production again."
    except TrainingError as exc:
        st.session_state.model_action_error = str(exc)
    cached_versions.clear()


def train(params: dict[str, Any], progress_area: Any) -> None:
    from models.train import train_model

    progress_area.progress(0.0, text="Starting training...")

    def report(share: float, message: str) -> None:
        progress_area.progress(min(max(share, 0.0), 1.0), text=message)

    try:
        st.session_state.model_result = train_model(DATABASE_URL, params, progress=report)
    except (TrainingError, IncompatibleModelError) as exc:
        st.session_state.model_error = str(exc)
    except Exception as exc:  # The page shows a sentence; the server log keeps the traceback.
        logger.exception("Training failed with parameters %s", params)
        st.session_state.model_error = (
            f"Training failed with an unexpected {type(exc).__name__}: {exc}. "
            "The Streamlit server log has the details."
        )
    else:
        st.session_state.model_version = st.session_state.model_result["version"]
        cached_versions.clear()
    progress_area.empty()


# ---- Rendering ---------------------------------------------------------------


def format_metric(value: object, spec: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return "n/a"


def show_training_result(result: dict) -> None:
    version = result.get("version")
    st.success(f"Trained and registered version {version}." if version is not None else "Trained the model.")
    rows, holdout, precision, recall, roc_auc, pr_auc = st.columns(6)
    rows.metric("Training rows", format_metric(result.get("rows"), ","))
    holdout.metric("Held-out rows", format_metric(result.get("holdout_rows"), ","))
    precision.metric("Precision", format_metric(result.get("precision"), ".3f"))
    recall.metric("Recall", format_metric(result.get("recall"), ".3f"))
    roc_auc.metric("ROC AUC", format_metric(result.get("roc_auc"), ".3f"))
    pr_auc.metric("PR AUC", format_metric(result.get("pr_auc"), ".3f"))
    st.caption(
        "Metrics of the held-out rows, the latest in event_time, at the model's own threshold "
        f"{format_metric(result.get('threshold'), '.4f')}. Share of training rows flagged: "
        f"{format_metric(result.get('share_flagged'), '.1%')}."
    )
    for note in result.get("notes") or ():
        st.info(note)
    if result.get("model_path"):
        st.markdown(f"Model file: `{result['model_path']}`.")


def show_training_form() -> None:
    with st.form("train_form"):
        trees, samples, contamination, features, seed = st.columns(5)
        trees.number_input(
            "Trees (n_estimators)", min_value=1, max_value=MAX_N_ESTIMATORS, value=100, step=10,
            key="model_n_estimators", help="Number of isolation trees in the forest.",
        )
        samples.text_input(
            "Max samples", value="auto", key="model_max_samples",
            help="Rows drawn for each tree: auto (min(256, rows)), a whole number such as 256, or a share such as 0.5.",
        )
        contamination.text_input(
            "Contamination", value="0.1", key="model_contamination",
            help="Expected share of fraud, from 0 to 0.5, or auto. It sets the model's threshold.",
        )
        features.text_input(
            "Max features", value="1.0", key="model_max_features",
            help="Features drawn for each tree: a whole number such as 3, or a share such as 0.5.",
        )
        seed.number_input(
            "Random state", min_value=0, max_value=MAX_RANDOM_STATE, value=42, step=1,
            key="model_random_state", help="Whole number that makes training repeatable.",
        )

        feature_set, limit, holdout, start, end = st.columns(5)
        feature_set.selectbox(
            "Feature set", list(FEATURE_SETS), index=list(FEATURE_SETS).index(DEFAULT_FEATURE_SET),
            key="model_feature_set",
            help="; ".join(f"{name}: {', '.join(names)}" for name, names in FEATURE_SETS.items()),
        )
        limit.number_input(
            "Sample size (rows)", min_value=1, max_value=MAX_LIMIT, value=200_000, step=10_000,
            key="model_limit", help="Number of newest transactions of the window to read.",
        )
        holdout.number_input(
            "Hold-out share", min_value=0.0, max_value=0.9, value=0.2, step=0.05, format="%.2f",
            key="model_holdout", help="Latest share of the rows kept out of fitting for evaluation, from 0 to 0.9.",
        )
        start.text_input(
            "Window start (UTC)", value="", key="model_start", placeholder="2026-01-01T00:00:00Z",
            help="Read rows with event_time >= this ISO 8601 time. Blank reads from the first row.",
        )
        end.text_input(
            "Window end (UTC)", value="", key="model_end", placeholder="2026-02-01T00:00:00Z",
            help="Read rows with event_time < this ISO 8601 time. Blank reads to the last row.",
        )

        bootstrap, novelty = st.columns(2)
        bootstrap.checkbox("Bootstrap", value=False, key="model_bootstrap", help="Draw each tree's rows with replacement.")
        novelty.checkbox(
            "Novelty detection", value=False, key="model_novelty",
            help="Fit only on training rows with is_fraud = 0. The hold-out keeps every row.",
        )
        st.form_submit_button("Train", on_click=request_training, icon=":material/model_training:")


def show_threshold_tuning(artifact: dict, window: pd.DataFrame, scores: np.ndarray, version: int) -> float:
    """Show the threshold control, the metrics and the charts, and return the threshold in use."""
    labels = window["is_fraud"].to_numpy(dtype=np.int64)
    model_threshold = float(artifact["threshold"])
    mode = st.radio(
        "Set the alert threshold by", ["fraud_score threshold", "contamination"], horizontal=True,
        key="model_threshold_mode",
        help="Contamination is the share of the training rows to flag, converted to a threshold.",
    )
    if mode == "fraud_score threshold":
        key = f"model_threshold_{version}"
        low, high = lab.threshold_range(scores, model_threshold)
        # Streamlit resets a slider whose range changes, so the page keeps
        # the chosen value itself and clamps it into the new window's range.
        # The first value is the model's own threshold exactly, not rounded to
        # the slider's step, so the page starts with the model's own alerts.
        chosen = st.session_state.get(key, model_threshold)
        st.session_state[key] = min(max(float(chosen), low), high)
        value = st.slider(
            "fraud_score threshold", min_value=low, max_value=high, step=0.0001, format="%.4f", key=key,
        )
        threshold = lab.threshold_for(artifact, "threshold", value)
    else:
        share = float(np.clip(lab.share_above(artifact, model_threshold), 0.001, 0.5))
        value = st.slider(
            "Contamination (share of training rows flagged)", min_value=0.001, max_value=0.5,
            value=round(share, 3), step=0.001, format="%.3f", key=f"model_contamination_{version}",
        )
        threshold = lab.threshold_for(artifact, "contamination", value)

    metrics = metrics_at_threshold(labels, scores, threshold)
    st.markdown(
        f"Threshold in use: **{threshold:.6f}**. A transaction is predicted fraud when its "
        f"fraud_score is above it. The model's own threshold is {model_threshold:.6f}."
    )
    precision, recall, f1, alerts, per_thousand = st.columns(5)
    precision.metric("Precision", format_metric(metrics["precision"], ".3f"))
    recall.metric("Recall", format_metric(metrics["recall"], ".3f"))
    f1.metric("F1", format_metric(metrics["f1"], ".3f"))
    alerts.metric("Alerts", format_metric(metrics["alerts"], ","))
    per_thousand.metric("Alerts per 1,000", format_metric(metrics["alerts_per_1000"], ".1f"))
    for note in metrics["notes"]:
        st.info(note)

    matrix, histogram = st.columns([1, 2])
    matrix.plotly_chart(charts.confusion_matrix_figure(metrics["confusion_matrix"]), key="model_confusion")
    histogram.plotly_chart(charts.score_histogram(labels, scores, threshold), key="model_histogram")
    roc, pr = st.columns(2)
    roc.plotly_chart(charts.roc_figure(labels, scores, threshold), key="model_roc")
    pr.plotly_chart(charts.precision_recall_figure(labels, scores, threshold), key="model_pr")

    top = np.argsort(-scores, kind="stable")[:PICKER_ROWS]
    st.markdown("**Highest fraud_score in the window**")
    st.dataframe(
        pd.DataFrame(
            {
                "transaction_id": window["transaction_id"].to_numpy()[top],
                "event_time": window["event_time"].to_numpy()[top],
                "fraud_score": scores[top],
                "predicted_fraud": flag(scores[top], threshold),
                "is_fraud": labels[top],
            }
        ),
        hide_index=True,
    )
    return threshold


def show_reviewed_precision(version: int) -> None:
    try:
        result = cached_reviewed_precision(DATABASE_URL, version)
    except TrainingError as exc:
        st.warning(str(exc), icon=":material/database:")
        return
    precision, confirmed, false_positive = st.columns(3)
    precision.metric("Precision on reviewed alerts", format_metric(result["reviewed_precision"], ".3f"))
    confirmed.metric("Reviewed: confirmed fraud", format_metric(result["reviewed_confirmed_fraud"], ","))
    false_positive.metric("Reviewed: false positive", format_metric(result["reviewed_false_positive"], ","))
    st.caption(
        f"Alerts that version {version} flagged in live scoring, at its own threshold, and that analysts "
        "reviewed as confirmed fraud or false positive. The slider above does not change them."
    )
    if result["reviewed_note"]:
        st.info(result["reviewed_note"])


def show_explanations(version: int, window_key: tuple, window: pd.DataFrame, scores: np.ndarray, threshold: float) -> None:
    try:
        explainer = cached_explainer(DATABASE_URL, version)
        contributions, features = cached_global_shap(DATABASE_URL, version, *window_key)
    except ValueError as exc:
        st.error(f"Explaining version {version} failed: {exc}", icon=":material/error:")
        return
    st.caption(
        f"SHAP values of {len(contributions):,} sampled rows of the evaluation window, in fraud_score "
        "units: the base value plus a row's SHAP values equals its fraud_score."
    )
    importance, swarm = st.columns(2)
    importance.plotly_chart(charts.shap_importance(contributions), key="model_shap_bar")
    swarm.plotly_chart(charts.shap_beeswarm(contributions, features), key="model_shap_swarm")

    top = np.argsort(-scores, kind="stable")[:PICKER_ROWS]
    picked, typed = st.columns(2)
    choice = picked.selectbox(
        "Transaction (highest fraud_score first)", window["transaction_id"].to_numpy()[top].tolist(),
        key="model_explain_pick",
    )
    typed_id = typed.text_input(
        "Or type a transaction_id", key="model_explain_id",
        help="Any transaction in shop.transactions. It is explained with its user's history since training.",
    ).strip()
    transaction_id = typed_id or choice
    if not transaction_id:
        return
    try:
        _, window_features = cached_scores(DATABASE_URL, version, *window_key)
        result = lab.explain_in_window(explainer, window_features, window, transaction_id)
        if result is None:
            result = lab.explain_stored(DATABASE_URL, explainer, transaction_id)
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    verdict = "flagged" if flag(result["fraud_score"], threshold) else "not flagged"
    st.markdown(
        f"Transaction `{transaction_id}`: fraud_score **{result['fraud_score']:.6f}**, {verdict} "
        f"at the threshold {threshold:.6f}."
    )
    st.plotly_chart(
        charts.waterfall(result["base_value"], result["contributions"], result["fraud_score"], threshold, result["features"]),
        key="model_waterfall",
    )


def show_registry(versions: pd.DataFrame, production: int | None, selected: int, window_key: tuple | None) -> None:
    st.dataframe(lab.versions_table(versions), hide_index=True)
    promote, rollback = st.columns(2)
    promote.button(
        f"Promote version {selected} to production", key="model_promote", on_click=run_registry_action,
        args=("promote", selected), disabled=selected == production, icon=":material/publish:",
    )
    rollback.button(
        "Roll back to the previous production version", key="model_rollback", on_click=run_registry_action,
        args=("rollback",), disabled=production is None, icon=":material/undo:",
    )

    st.subheader("Compare two versions")
    numbers = versions["version"].astype(int).tolist()
    if len(numbers) < 2:
        st.info("Train a second version to compare two.")
        return
    first, second = st.columns(2)
    left = first.selectbox("Version", numbers, index=numbers.index(selected), key="model_compare_left")
    default_right = production if production in numbers and production != left else next(v for v in numbers if v != left)
    right = second.selectbox("With version", numbers, index=numbers.index(default_right), key="model_compare_right")
    if left == right or window_key is None:
        st.info("Pick two different versions, with an evaluation window that has rows.")
        return
    try:
        table = cached_comparison(DATABASE_URL, (int(left), int(right)), *window_key)
    except IncompatibleModelError as exc:
        st.warning(f"Versions {left} and {right} cannot be compared. {exc}", icon=":material/sync_problem:")
        return
    except ValueError as exc:
        st.error(f"Comparing versions {left} and {right} failed: {exc}", icon=":material/error:")
        return
    st.caption(f"Both versions scored on the same {int(table.iloc[1, 0]):,} rows, each at its own threshold.")
    st.dataframe(lab.format_comparison(table))


def evaluation_window_key(artifact: dict) -> tuple[str | None, str | None, int]:
    default_start = lab.evaluation_start(artifact.get("training_window"))
    start_column, end_column, limit_column = st.columns(3)
    start = start_column.text_input(
        "Evaluation start (UTC)", value="", key="model_eval_start", placeholder=default_start or "first row",
        help="ISO 8601 time. Blank starts just after the version's training window.",
    ).strip() or default_start
    end = end_column.text_input(
        "Evaluation end (UTC)", value="", key="model_eval_end", placeholder="last row",
        help="ISO 8601 time, exclusive. Blank reads to the last row.",
    ).strip() or None
    limit = limit_column.number_input(
        "Evaluation rows", min_value=100, max_value=MAX_LIMIT, value=DEFAULT_EVALUATION_ROWS, step=10_000,
        key="model_eval_limit", help="Number of newest transactions of the window to score.",
    )
    return start, end, int(limit)


# ---- Page --------------------------------------------------------------------

st.title("Model")
try:
    database_address = postgres_address(DATABASE_URL)
except (ArgumentError, ValueError):
    database_address = redact_url(DATABASE_URL)
st.caption(
    f"Isolation Forest models trained on the transactions in PostgreSQL at {database_address}. "
    "fraud_score is higher for more suspicious transactions."
)

# The progress bar's placeholder exists in every run. A bar added only while
# training would shift the tabs below it, and Streamlit would then recreate
# them on the next run with the first tab selected.
progress_area = st.empty()
pending = st.session_state.model_request
if pending is not None:
    st.session_state.model_request = None
    train(pending, progress_area)

train_tab, evaluate_tab, explain_tab, registry_tab = st.tabs(["Train", "Evaluate", "Explain", "Registry"])

with train_tab:
    show_training_form()
    if st.session_state.model_error:
        st.error(st.session_state.model_error, icon=":material/error:")
    elif st.session_state.model_result:
        show_training_result(st.session_state.model_result)

try:
    versions, production = cached_versions(DATABASE_URL)
except TrainingError as exc:
    versions, production = None, None
    registry_message = str(exc)
else:
    registry_message = None

if st.session_state.model_notice:
    st.success(st.session_state.model_notice, icon=":material/check_circle:")
if st.session_state.model_action_error:
    st.error(st.session_state.model_action_error, icon=":material/error:")

if versions is None or versions.empty:
    message = registry_message or "No model is registered yet. Train one in the Train tab."
    for tab in (evaluate_tab, explain_tab, registry_tab):
        # NOTE: a warning, not an error, because an unreachable registry is the normal
        # state before the stack starts; training failures show as errors.
        tab.warning(message, icon=":material/database:")
    st.stop()

version_numbers = versions["version"].astype(int).tolist()
if st.session_state.get("model_version") not in version_numbers:
    st.session_state.model_version = production if production in version_numbers else version_numbers[0]
selected_version = st.sidebar.selectbox(
    "Model version", version_numbers, key="model_version",
    format_func=lambda v: f"{v} (production)" if v == production else str(v),
)
st.sidebar.caption(f"Production: version {production}" if production is not None else "Production: none promoted")

window_key = None
artifact = None
try:
    artifact = cached_artifact(DATABASE_URL, selected_version)
except IncompatibleModelError as exc:
    for tab in (evaluate_tab, explain_tab):
        tab.warning(str(exc), icon=":material/sync_problem:")
    stored = versions.loc[versions["version"] == selected_version, "parameters"].iloc[0]
    evaluate_tab.button(
        f"Retrain with the parameters of version {selected_version}", key="model_retrain",
        on_click=request_retraining, args=(dict(stored),), icon=":material/model_training:",
    )
except TrainingError as exc:
    for tab in (evaluate_tab, explain_tab):
        tab.error(str(exc), icon=":material/error:")

if artifact is not None:
    with evaluate_tab:
        key = evaluation_window_key(artifact)
        try:
            window = cached_window(DATABASE_URL, *key)
            scores, _ = cached_scores(DATABASE_URL, selected_version, *key)
        except ValueError as exc:
            st.error(f"Evaluating version {selected_version} failed: {exc}", icon=":material/error:")
        else:
            window_key = key
            st.caption(
                f"Version {selected_version} ({artifact['feature_set']}) on {len(window):,} transactions "
                f"from {window['event_time'].iloc[0]} to {window['event_time'].iloc[-1]}, "
                f"{int(window['is_fraud'].sum()):,} of them fraud."
            )
            threshold = show_threshold_tuning(artifact, window, scores, selected_version)
        st.subheader("Analyst reviews")
        show_reviewed_precision(selected_version)
    with explain_tab:
        if window_key is None:
            st.info("The Evaluate tab needs an evaluation window with rows before transactions can be explained.")
        else:
            show_explanations(selected_version, window_key, window, scores, threshold)

with registry_tab:
    show_registry(versions, production, selected_version, window_key)
