"""Pipeline page: start, stop and watch the producer and consumers, and start fraud campaigns."""

import streamlit as st

from components.frame import require_app_frame
from pipeline import supervisor
from pipeline.health import HealthResult, check_kafka, check_postgres
from pipeline.producer_options import DEFAULT_CAMPAIGN_COUNT
from pipeline.settings import get_settings
from pipeline.simulator import DEFAULT_FRAUD_RATIO, FRAUD_PATTERNS
from pipeline.supervisor.jobs import JOBS, LONG_RUNNING_JOBS, MAX_CAMPAIGN_COUNT

STATUS_REFRESH_SECONDS = 2
HEALTH_REFRESH_SECONDS = 10
LOG_LINES = 10

# Job name -> (metrics key, label) of the job's main progress number.
PROGRESS = {
    "producer": ("sent", "Messages sent"),
    "consumer-transactions": ("rows_written", "Rows written"),
    "consumer-frauds": ("rows_written", "Rows written"),
    "campaign": ("sent", "Messages sent"),
}

require_app_frame("pipeline")
settings = get_settings()

if "pipeline_notice" not in st.session_state:
    st.session_state.pipeline_notice = None


@st.cache_data(ttl=5, show_spinner=False)
def postgres_health(database_url: str) -> HealthResult:
    return check_postgres(database_url)


@st.cache_data(ttl=5, show_spinner=False)
def kafka_health(bootstrap_servers: str, topic: str) -> HealthResult:
    # The SASL password is read here, so it stays out of the cache key.
    client_config = get_settings().kafka_client_config()
    return check_kafka(bootstrap_servers, topic=topic, client_config=client_config)


def format_number(value: object, spec: str = ",") -> str:
    """Format a metrics value, which a job may write as any JSON type."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def format_duration(seconds: float) -> str:
    minutes, remaining_seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {remaining_seconds:02d} s"
    return f"{remaining_seconds} s"


def start_job(name: str) -> None:
    options = {}
    if name == "producer":
        options = {
            "rate": st.session_state.get("producer_rate"),
            "fraud_ratio": st.session_state.get("producer_fraud_ratio"),
            "seed": st.session_state.get("producer_seed"),
        }
    elif name == "campaign":
        # The producer's seed, so the campaign hits the users the producer streams.
        options = {
            "pattern": st.session_state.get("campaign_pattern"),
            "count": st.session_state.get("campaign_count"),
            "seed": st.session_state.get("producer_seed"),
        }
    title = JOBS[name].title
    try:
        current = supervisor.status(name)
        if current.running:
            st.session_state.pipeline_notice = (
                "info",
                f"{title} already runs with pid {current.pid}. "
                "Stop it first to change its options.",
            )
            return
        job = supervisor.start(name, **options)
    except (supervisor.JobOptionsError, supervisor.SupervisorError, OSError) as exc:
        st.session_state.pipeline_notice = ("error", f"{title} did not start: {exc}")
        return
    st.session_state.pipeline_notice = ("success", f"{title} started with pid {job.pid}.")


def stop_job(name: str) -> None:
    title = JOBS[name].title
    try:
        job = supervisor.stop(name)
    except (supervisor.SupervisorError, OSError) as exc:
        st.session_state.pipeline_notice = ("error", f"{title} did not stop: {exc}")
        return
    ended = f" It {job.exit.describe()}." if job.exit else ""
    st.session_state.pipeline_notice = ("success", f"{title} stopped.{ended}")


def show_health(result: HealthResult) -> None:
    if result.ok:
        st.success(result.message, icon=":material/check_circle:")
    else:
        st.error(result.message, icon=":material/error:")


@st.fragment(run_every=HEALTH_REFRESH_SECONDS)
def health_panel() -> None:
    kafka_column, postgres_column = st.columns(2)
    with kafka_column:
        show_health(kafka_health(settings.kafka_bootstrap_servers, settings.kafka_topic))
    with postgres_column:
        show_health(postgres_health(settings.database_url))


def producer_options() -> None:
    rate_column, ratio_column, seed_column = st.columns(3)
    rate_column.number_input(
        "Rate (messages per second)",
        min_value=0.0,
        value=20.0,
        step=1.0,
        key="producer_rate",
        help="Messages per second that the producer sends to Kafka. 0 sends as fast as Kafka accepts, "
        "with no limit; stop the producer to pause the stream.",
    )
    ratio_column.number_input(
        "Fraud ratio",
        min_value=0.0,
        max_value=1.0,
        value=DEFAULT_FRAUD_RATIO,
        step=0.01,
        key="producer_fraud_ratio",
        help="Share of generated transactions that are fraudulent, from 0 to 1.",
    )
    seed_column.number_input(
        "Seed",
        min_value=0,
        value=None,
        step=1,
        key="producer_seed",
        placeholder="random",
        help=(
            "Whole number that makes the generated stream repeatable. "
            "Empty gives a new stream each start."
        ),
    )
    st.caption("The options apply when the producer starts.")


def show_job(job: supervisor.JobStatus) -> None:
    st.markdown(f"**{JOBS[job.name].title}**")
    if job.running:
        st.markdown(
            f":green[:material/play_circle: Running] · pid {job.pid} · "
            f"up {format_duration(job.uptime_seconds or 0)}"
        )
    else:
        ended = f" · {job.exit.describe()}" if job.exit else ""
        st.markdown(f":gray[:material/stop_circle: Stopped]{ended}")
        cause = job.failure_cause()
        if cause:
            st.error(
                f"{JOBS[job.name].title} stopped with an error. The last error in its log: {cause}",
                icon=":material/error:",
            )

    metrics = job.metrics
    key, label = PROGRESS[job.name]
    st.metric(label, format_number(metrics[key]) if key in metrics else "–")
    details = []
    if "failed" in metrics:
        details.append(f"failed: {format_number(metrics['failed'])}")
    if "rate_per_s" in metrics:
        details.append(f"rate: {format_number(metrics['rate_per_s'], '.1f')}/s")
    if "batches" in metrics:
        details.append(f"batches: {format_number(metrics['batches'])}")
    if "last_batch_rows" in metrics and "last_batch_seconds" in metrics:
        details.append(
            f"last batch: {format_number(metrics['last_batch_rows'])} rows "
            f"in {format_number(metrics['last_batch_seconds'], '.1f')} s"
        )
    if "rows_scored" in metrics:
        version = metrics.get("model_version")
        details.append(
            f"scored: {format_number(metrics['rows_scored'])}"
            + (f" by model version {version}" if version is not None else "")
        )
    if details:
        st.caption(" · ".join(details))
    if metrics.get("scoring_problem"):
        st.warning(metrics["scoring_problem"], icon=":material/warning:")

    start_column, stop_column = st.columns(2)
    start_column.button(
        "Start",
        key=f"start-{job.name}",
        on_click=start_job,
        args=(job.name,),
        disabled=job.running,
        icon=":material/play_arrow:",
        width="stretch",
    )
    stop_column.button(
        "Stop",
        key=f"stop-{job.name}",
        on_click=stop_job,
        args=(job.name,),
        disabled=not job.running,
        icon=":material/stop:",
        width="stretch",
    )
    st.caption(f"Last log lines ({job.log_path})")
    st.code("\n".join(job.log_tail) or "No output yet.", language=None, wrap_lines=True)


@st.fragment(run_every=STATUS_REFRESH_SECONDS)
def job_panel() -> None:
    notice = st.session_state.pipeline_notice
    if notice is not None:
        kind, message = notice
        show_notice = {"success": st.success, "info": st.info, "error": st.error}[kind]
        show_notice(message)

    try:
        statuses = supervisor.default_supervisor(settings).status_all(log_lines=LOG_LINES)
    except OSError as exc:
        st.error(
            f"The job state under {settings.jobs_dir} cannot be read: {exc}. "
            "Check that WORKBENCH_STATE_DIR points to a writable folder."
        )
        return

    jobs = [statuses[name] for name in LONG_RUNNING_JOBS]
    for column, job in zip(st.columns(len(jobs)), jobs):
        with column, st.container(border=True):
            show_job(job)


def campaign_options() -> None:
    pattern_column, count_column, button_column = st.columns([2, 1, 1], vertical_alignment="bottom")
    pattern_column.selectbox(
        "Fraud pattern",
        FRAUD_PATTERNS,
        key="campaign_pattern",
        help="The pattern of every message of the campaign; docs/fraud-patterns.md describes each.",
    )
    count_column.number_input(
        "Messages",
        min_value=1,
        max_value=MAX_CAMPAIGN_COUNT,
        value=DEFAULT_CAMPAIGN_COUNT,
        step=1,
        key="campaign_count",
        help="Number of messages the campaign sends. A geo_jump campaign sends a "
        "legitimate transaction at home before each jump, so half are frauds.",
    )
    button_column.button(
        "Start campaign",
        key="start-campaign",
        on_click=start_job,
        args=("campaign",),
        icon=":material/bolt:",
        width="stretch",
    )
    st.caption(
        "A campaign sends its messages at once, stamped with the current time, to the "
        "users of the producer's seed (seed 0 when the seed is empty)."
    )


@st.fragment(run_every=STATUS_REFRESH_SECONDS)
def campaign_panel() -> None:
    try:
        job = supervisor.default_supervisor(settings).status("campaign", log_lines=LOG_LINES)
    except OSError as exc:
        st.error(
            f"The job state under {settings.jobs_dir} cannot be read: {exc}. "
            "Check that WORKBENCH_STATE_DIR points to a writable folder."
        )
        return

    with st.container(border=True):
        if job.running:
            st.markdown(f":green[:material/play_circle: Running] · pid {job.pid}")
        elif job.exit is not None:
            st.markdown(f":gray[:material/flag: Finished] · {job.exit.describe()}")
        else:
            st.markdown(":gray[:material/flag: No campaign yet]")
        key, label = PROGRESS["campaign"]
        st.metric(label, format_number(job.metrics[key]) if key in job.metrics else "–")
        st.caption(f"Last log lines ({job.log_path})")
        st.code("\n".join(job.log_tail) or "No output yet.", language=None, wrap_lines=True)


st.title("Pipeline")
st.caption(
    "Kafka → Spark Structured Streaming → PostgreSQL. The jobs run as separate "
    "processes, so they keep running when this page is closed."
)
health_panel()

st.subheader("Producer options")
producer_options()

st.subheader("Jobs")
job_panel()

st.subheader("Fraud campaign")
campaign_options()
campaign_panel()
