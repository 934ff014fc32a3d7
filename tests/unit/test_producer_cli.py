"""The producer's command line, summary, pacing and sinks, without a Kafka broker.

Subprocess tests run ``python -m pipeline.producer`` the way a user does. The
unreachable-broker tests point it at a loopback port that nothing listens on.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError
from kafka.future import Future

from pipeline.kafka_sink import KafkaSink
from pipeline.message import parse_timestamp, validate_message
from pipeline.producer import (
    MetricsWriter,
    RatePacer,
    StdoutSink,
    format_summary,
    parse_args,
    parse_summary,
    produce,
)
from pipeline.producer_options import build_generator
from pipeline.simulator import (
    DEFAULT_POPULATION_SEED,
    FRAUD_PATTERNS,
    TransactionGenerator,
    build_population,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
START_TIME = "2026-01-05T10:00:00+00:00"
SUBPROCESS_TIMEOUT_S = 30

# Variables that would point the producer at a user's own cluster.
KAFKA_VARIABLES = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
)


def _env(**overrides: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in KAFKA_VARIABLES and not key.startswith("WORKBENCH_")
    }
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    env.update(overrides)
    return env


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.producer", *args],
        cwd=PROJECT_ROOT,
        env=env or _env(),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )


def _closed_port() -> int:
    # Bind to an ephemeral port and release it: nothing listens there
    # afterwards, so a connection is refused at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- summary


def test_format_summary_fields_in_order() -> None:
    line = format_summary(2000, 3, 1.234)

    assert line == "sent=2000 failed=3 elapsed_s=1.23 rate_per_s=1620.7"


def test_format_summary_zero_elapsed() -> None:
    assert format_summary(0, 0, 0.0) == "sent=0 failed=0 elapsed_s=0.00 rate_per_s=0.0"


def test_parse_summary_round_trip() -> None:
    values = parse_summary(format_summary(10, 1, 2.0))

    assert values == {"sent": 10, "failed": 1, "elapsed_s": 2.0, "rate_per_s": 5.0}


@pytest.mark.parametrize(
    "line",
    [
        "",
        "sent=1 failed=0",
        "sent=1 failed=0 elapsed_s=1.00 rate_per_s=1.0 extra=1",
        "2026-01-05 INFO pipeline.producer: Stopped",
        "failed=0 sent=1 elapsed_s=1.00 rate_per_s=1.0",
    ],
)
def test_parse_summary_rejects_other_lines(line: str) -> None:
    with pytest.raises(ValueError, match="summary line"):
        parse_summary(line)


# ---------------------------------------------------------------- pacing and metrics


def test_rate_pacer_spaces_slots() -> None:
    pacer = RatePacer(10)

    assert pacer.delay(100.0) == 0.0
    assert pacer.delay(100.0) == pytest.approx(0.1)
    assert pacer.delay(100.0) == pytest.approx(0.2)
    assert pacer.delay(100.25) == pytest.approx(0.05)


def test_rate_pacer_restarts_after_stall() -> None:
    pacer = RatePacer(10, max_lag_s=1.0)
    pacer.delay(100.0)

    # Five seconds late: no burst of 50 catch-up sends, the schedule restarts.
    assert pacer.delay(105.0) == 0.0
    assert pacer.delay(105.0) == pytest.approx(0.1)


@pytest.mark.parametrize("rate", [0, -1, float("inf"), float("nan")])
def test_rate_pacer_invalid_rate_raises(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_per_s must be a finite number above 0"):
        RatePacer(rate)


def test_metrics_writer_interval_and_force(tmp_path: Path) -> None:
    path = tmp_path / "metrics" / "producer.json"
    writer = MetricsWriter(str(path), interval_s=3600)

    writer.maybe_write(5, 0)
    assert not path.exists()

    writer.maybe_write(7, 1, state="stopped", force=True)
    metrics = json.loads(path.read_text())
    assert metrics["sent"] == 7
    assert metrics["failed"] == 1
    assert metrics["state"] == "stopped"
    assert "rate_per_s" in metrics


# ---------------------------------------------------------------- arguments


def test_parse_args_defaults() -> None:
    args = parse_args([])

    assert args.count is None
    assert args.rate == 0.0
    assert args.fraud_ratio == 0.1
    assert args.partitions is None
    assert args.replication_factor == 1
    assert args.stdout is False
    assert args.users == 10_000
    assert args.pattern_mix is None
    assert args.campaign is None


def test_parse_args_pattern_mix_normalised() -> None:
    args = parse_args(["--pattern-mix", "geo_jump=3,card_testing=1"])

    assert args.pattern_mix["geo_jump"] == 0.75
    assert args.pattern_mix["card_testing"] == 0.25
    assert args.pattern_mix["high_amount"] == 0.0


def test_parse_args_campaign_defaults() -> None:
    args = parse_args(["--campaign", "card_testing"])

    assert args.campaign == "card_testing"
    assert args.count == 20
    assert args.fraud_ratio is None
    assert args.start_time is None


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--count", "-1"], r"--count: must be a whole number of at least 0, got '-1'"),
        (["--count", "ten"], r"--count: must be a whole number of at least 0, got 'ten'"),
        (["--rate", "-5"], r"--rate: must be a number of at least 0, got '-5'"),
        (["--rate", "inf"], r"--rate: must be a number of at least 0, got 'inf'"),
        (["--fraud-ratio", "1.5"], r"--fraud-ratio: must be a number from 0 to 1, got '1.5'"),
        (["--partitions", "0"], r"--partitions: must be a whole number from 1 to 1000, got '0'"),
        (["--start-time", "2026-01-05T10:00:00"], r"--start-time: must be ISO 8601 with a UTC"),
        (["--start-time", "yesterday"], r"--start-time: must be ISO 8601 with a UTC offset"),
        (["--users", "0"], r"--users: must be a whole number from 1 to 1000000, got '0'"),
        (["--pattern-mix", "phishing=1"], r"--pattern-mix: unknown fraud pattern 'phishing'"),
        (
            ["--pattern-mix", "geo_jump=-2"],
            r"--pattern-mix: weight of pattern 'geo_jump' must be a number >= 0, got '-2'",
        ),
        (["--pattern-mix", "geo_jump"], r"--pattern-mix: pattern mix item 'geo_jump' must be NAME="),
        (["--pattern-mix", "geo_jump=0"], r"--pattern-mix: at least one pattern weight must be above 0"),
        (["--campaign", "phishing"], r"--campaign: invalid choice: 'phishing'"),
        (
            ["--campaign", "geo_jump", "--start-time", "2026-01-05T10:00:00+00:00"],
            r"--campaign: a campaign sends only geo_jump frauds stamped with the current time, "
            r"so it takes no --start-time",
        ),
        (["--campaign", "geo_jump", "--fraud-ratio", "0.5"], r"takes no --fraud-ratio"),
        (["--campaign", "geo_jump", "--pattern-mix", "geo_jump=1"], r"takes no --pattern-mix"),
    ],
)
def test_parse_args_invalid_values_exit(
    argv: list[str], match: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_args(argv)

    assert raised.value.code == 2
    assert re.search(match, capsys.readouterr().err)


# ---------------------------------------------------------------- sinks and main loop


def test_produce_stdout_sink_count() -> None:
    stream = io.StringIO()
    sink = StdoutSink(stream)
    generator = TransactionGenerator(seed=4)

    queued = produce(generator, sink, threading.Event(), count=25)
    sink.close()

    assert queued == 25
    assert sink.counts() == (25, 0)
    assert len(stream.getvalue().splitlines()) == 25


def test_produce_stops_when_event_set() -> None:
    stop = threading.Event()
    stop.set()
    sink = StdoutSink(io.StringIO())

    assert produce(TransactionGenerator(seed=4), sink, stop, count=10) == 0


class FakeProducer:
    """Records sends and returns futures that the test resolves."""

    def __init__(self, acknowledge_on_flush: bool = True) -> None:
        self.acknowledge_on_flush = acknowledge_on_flush
        self.futures: list[Future] = []
        self.records: list[tuple[str, bytes, bytes]] = []
        self.flushed = False
        self.closed = False

    def send(self, topic: str, key: bytes, value: bytes) -> Future:
        future = Future()
        self.futures.append(future)
        self.records.append((topic, key, value))
        return future

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True
        pending = [future for future in self.futures if not future.is_done]
        if pending and not self.acknowledge_on_flush:
            raise KafkaTimeoutError("Timeout waiting for future")
        for future in pending:
            future.success("metadata")

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_kafka_sink_counts_callbacks() -> None:
    producer = FakeProducer()
    sink = KafkaSink(producer, "tx")
    stop = threading.Event()
    messages = TransactionGenerator(seed=8).generate(3)

    for message in messages:
        assert sink.send(message, stop)
    assert sink.counts() == (0, 0)
    assert sink.pending() == 3

    producer.futures[0].success("metadata")
    producer.futures[1].success("metadata")
    producer.futures[2].failure(KafkaTimeoutError("expired"))
    sink.close()

    assert sink.counts() == (2, 1)
    assert sink.pending() == 0
    assert producer.flushed
    assert producer.closed


def test_kafka_sink_close_acknowledges_pending() -> None:
    producer = FakeProducer()
    sink = KafkaSink(producer, "tx")
    for message in TransactionGenerator(seed=8).generate(5):
        sink.send(message, threading.Event())

    sink.close()

    assert sink.counts() == (5, 0)


def test_kafka_sink_close_timeout_counts_failed(caplog: pytest.LogCaptureFixture) -> None:
    producer = FakeProducer(acknowledge_on_flush=False)
    sink = KafkaSink(producer, "tx")
    for message in TransactionGenerator(seed=8).generate(4):
        sink.send(message, threading.Event())
    producer.futures[0].success("metadata")

    sink.close(timeout_s=0.1)

    assert sink.counts() == (1, 3)
    assert producer.closed
    assert "3 record(s) to topic tx were not acknowledged within 0 s" in caplog.text


def test_kafka_sink_counts_frozen_after_close() -> None:
    producer = FakeProducer(acknowledge_on_flush=False)
    sink = KafkaSink(producer, "tx")
    sink.send(TransactionGenerator(seed=8).generate(1)[0], threading.Event())
    sink.close(timeout_s=0.1)

    producer.futures[0].success("metadata")

    assert sink.counts() == (0, 1)


def test_kafka_sink_abort_counts_pending_failed() -> None:
    producer = FakeProducer()
    sink = KafkaSink(producer, "tx")
    for message in TransactionGenerator(seed=8).generate(3):
        sink.send(message, threading.Event())
    producer.futures[0].success("metadata")

    sink.abort()

    assert sink.counts() == (1, 2)
    assert producer.closed


def test_kafka_sink_record_key_and_value() -> None:
    producer = FakeProducer()
    sink = KafkaSink(producer, "tx")
    message = TransactionGenerator(seed=8).generate(1)[0]

    sink.send(message, threading.Event())
    topic, key, value = producer.records[0]

    assert topic == "tx"
    assert key == message["user_id"].encode("utf-8")
    assert json.loads(value) == message
    assert validate_message(value)[1] is None


def test_kafka_sink_full_buffer_waits_until_stop() -> None:
    producer = FakeProducer()
    sink = KafkaSink(producer, "tx", max_pending=1)
    stop = threading.Event()
    messages = TransactionGenerator(seed=8).generate(300)

    # The sink checks the buffer once every PENDING_CHECK_INTERVAL (256)
    # sends, so all of the first 256 go out before a check finds them pending.
    accepted = [sink.send(message, stop) for message in messages[:256]]
    assert all(accepted)

    stop.set()
    assert sink.send(messages[256], stop) is False
    assert len(producer.records) == 256


def test_kafka_sink_full_buffer_resumes_after_ack() -> None:
    producer = FakeProducer()
    sink = KafkaSink(producer, "tx", max_pending=1)
    stop = threading.Event()
    messages = TransactionGenerator(seed=8).generate(257)
    for message in messages[:256]:
        sink.send(message, stop)

    def acknowledge_all() -> None:
        for future in producer.futures:
            future.success("metadata")

    timer = threading.Timer(0.2, acknowledge_all)
    timer.start()
    try:
        assert sink.send(messages[256], stop) is True
    finally:
        timer.cancel()
    assert sink.counts() == (256, 0)


# ---------------------------------------------------------------- command line


def test_cli_stdout_json_lines_and_summary() -> None:
    result = _run("--stdout", "--count", "200", "--seed", "7", "--start-time", START_TIME)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 200
    for line in lines:
        record, reason = validate_message(line)
        assert reason is None, (reason, line)
    summary = parse_summary(result.stderr.strip().splitlines()[-1])
    assert summary["sent"] == 200
    assert summary["failed"] == 0


def test_cli_stdout_deterministic() -> None:
    args = ("--stdout", "--count", "100", "--seed", "7", "--start-time", START_TIME)
    first = _run(*args)
    second = _run(*args)
    other_seed = _run("--stdout", "--count", "100", "--seed", "8", "--start-time", START_TIME)

    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert first.stdout != other_seed.stdout


def test_cli_stdout_matches_generator() -> None:
    result = _run("--stdout", "--count", "20", "--seed", "7", "--start-time", START_TIME)
    printed = [json.loads(line) for line in result.stdout.splitlines()]

    # Without --rate the producer spaces timestamps 1 ms apart on average.
    generator = TransactionGenerator(
        seed=7,
        start_time=parse_args(["--start-time", START_TIME]).start_time,
        mean_interval_s=0.001,
    )
    assert printed == generator.generate(20)


def test_cli_stdout_deterministic_all_options() -> None:
    args = (
        "--stdout", "--count", "3000", "--seed", "11", "--start-time", START_TIME,
        "--users", "700", "--fraud-ratio", "0.3", "--pattern-mix", "card_testing=1,geo_jump=1",
    )
    first = _run(*args)
    second = _run(*args)
    patterns = {json.loads(line)["fraud_pattern"] for line in first.stdout.splitlines()}

    assert first.returncode == 0, first.stderr
    assert first.stdout.encode() == second.stdout.encode()
    assert patterns == {None, "card_testing", "geo_jump"}
    assert len({json.loads(line)["user_id"] for line in first.stdout.splitlines()}) <= 700


def test_cli_stdout_fraud_ratio_option() -> None:
    result = _run(
        "--stdout", "--count", "300", "--seed", "1", "--fraud-ratio", "1",
        "--pattern-mix", "high_amount=1",
    )
    labels = {json.loads(line)["is_fraud"] for line in result.stdout.splitlines()}

    assert result.returncode == 0, result.stderr
    assert labels == {1}


@pytest.mark.parametrize("pattern", FRAUD_PATTERNS)
def test_cli_campaign_sends_pattern_now(pattern: str) -> None:
    before = datetime.now(timezone.utc)
    result = _run("--stdout", "--campaign", pattern, "--count", "30")
    after = datetime.now(timezone.utc)
    messages = [json.loads(line) for line in result.stdout.splitlines()]
    frauds = [m for m in messages if m["is_fraud"] == 1]

    assert result.returncode == 0, result.stderr
    assert len(messages) == 30
    assert {m["fraud_pattern"] for m in frauds} == {pattern}
    assert all(before <= parse_timestamp(m["timestamp"]) <= after for m in messages)
    if pattern == "geo_jump":
        # Each jump follows a legitimate transaction of the same user at home.
        assert len(frauds) == 15
        for home, jump in zip(messages[::2], messages[1::2]):
            assert home["is_fraud"] == 0
            assert home["user_id"] == jump["user_id"]
            assert home["transaction_location"] == jump["location"] != jump["transaction_location"]
    else:
        assert len(frauds) == 30
    assert parse_summary(result.stderr.strip().splitlines()[-1])["sent"] == 30


def test_cli_campaign_bursts_back_to_back() -> None:
    result = _run("--stdout", "--campaign", "card_testing", "--count", "40")
    users = [json.loads(line)["user_id"] for line in result.stdout.splitlines()]
    runs = [1]
    for previous, user in zip(users, users[1:]):
        if user == previous:
            runs[-1] += 1
        else:
            runs.append(1)

    assert result.returncode == 0, result.stderr
    # Every burst but the last, which --count may cut, has 5 to 12 messages.
    assert all(5 <= run <= 12 for run in runs[:-1])


def test_cli_campaign_targets_default_population() -> None:
    campaign = _run("--stdout", "--campaign", "high_amount", "--users", "300")
    campaign_users = {json.loads(line)["user_id"] for line in campaign.stdout.splitlines()}

    assert campaign.returncode == 0, campaign.stderr
    assert len(campaign_users) > 1
    # Without --seed the producer streams the users of seed 0, and so does a campaign.
    assert campaign_users <= set(build_population(DEFAULT_POPULATION_SEED, 300).user_ids)


def test_build_generator_shared_population() -> None:
    live = build_generator(parse_args(["--users", "200"]))
    campaign = build_generator(parse_args(["--campaign", "geo_jump", "--users", "200"]))
    seeded_campaign = build_generator(parse_args(["--campaign", "geo_jump", "--seed", "5"]))

    assert live.population_seed == DEFAULT_POPULATION_SEED
    assert campaign.population == live.population
    assert seeded_campaign.population_seed == 5
    assert seeded_campaign.seed is None


def test_cli_campaign_new_transactions_each_run() -> None:
    first = _run("--stdout", "--campaign", "new_device", "--count", "5", "--seed", "3")
    second = _run("--stdout", "--campaign", "new_device", "--count", "5", "--seed", "3")
    first_ids = {json.loads(line)["transaction_id"] for line in first.stdout.splitlines()}
    second_ids = {json.loads(line)["transaction_id"] for line in second.stdout.splitlines()}

    assert first_ids.isdisjoint(second_ids)


def test_cli_campaign_invalid_option_exit_code() -> None:
    result = _run("--stdout", "--campaign", "geo_jump", "--fraud-ratio", "0.5")

    assert result.returncode == 2
    assert "takes no --fraud-ratio. Leave out --fraud-ratio." in result.stderr
    assert result.stdout == ""


def test_cli_metrics_file_final_counts(tmp_path: Path) -> None:
    metrics_path = tmp_path / "producer.json"
    result = _run("--stdout", "--count", "500", "--seed", "1", "--metrics-file", str(metrics_path))

    assert result.returncode == 0, result.stderr
    metrics = json.loads(metrics_path.read_text())
    assert metrics["sent"] == 500
    assert metrics["failed"] == 0
    assert metrics["state"] == "stopped"
    assert isinstance(metrics["rate_per_s"], float)


def test_cli_sigterm_flushes_and_summarises() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.producer", "--stdout", "--rate", "200", "--seed", "3"],
        cwd=PROJECT_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The start log line comes just before the first message.
        for line in process.stderr:
            if "Producing unlimited message(s)" in line:
                break
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, stderr
    summary = parse_summary(stderr.strip().splitlines()[-1])
    lines = stdout.splitlines()
    assert len(lines) > 0
    assert summary["sent"] == len(lines)
    assert "Received SIGTERM" in stderr


def test_cli_rate_limits_throughput() -> None:
    result = _run("--stdout", "--count", "30", "--rate", "50", "--seed", "1")

    assert result.returncode == 0, result.stderr
    summary = parse_summary(result.stderr.strip().splitlines()[-1])
    # 30 sends at 50/s take at least 29 gaps of 20 ms.
    assert summary["elapsed_s"] >= 0.55


def test_cli_invalid_option_exit_code() -> None:
    result = _run("--stdout", "--fraud-ratio", "2")

    assert result.returncode == 2
    assert "--fraud-ratio: must be a number from 0 to 1, got '2'" in result.stderr


def test_cli_invalid_setting_exit_code() -> None:
    result = _run("--stdout", "--count", "1", env=_env(KAFKA_TOPIC_PARTITIONS="zero"))

    assert result.returncode == 2
    assert "KAFKA_TOPIC_PARTITIONS must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_unreachable_local_broker_message() -> None:
    port = _closed_port()
    result = _run("--count", "5", env=_env(WORKBENCH_KAFKA_PORT=str(port)))

    assert result.returncode == 1
    assert f"Kafka is not reachable at 127.0.0.1:{port}" in result.stderr
    assert "python -m pipeline.stack up" in result.stderr
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_unreachable_external_broker_message() -> None:
    port = _closed_port()
    result = _run("--count", "5", env=_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"))

    assert result.returncode == 1
    assert f"Kafka is not reachable at 127.0.0.1:{port}" in result.stderr
    assert "Check that the cluster is running" in result.stderr
    assert "Traceback" not in result.stderr


def test_stdout_with_simulated_time_is_not_paced(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    import pipeline.producer as producer_module

    def no_pacing(rate: float) -> None:
        raise AssertionError(f"a file of simulated timestamps was paced at {rate}/s")

    monkeypatch.setattr(producer_module, "RatePacer", no_pacing)
    code = producer_module.main(
        ["--stdout", "--count", "5", "--seed", "1", "--start-time", "2026-01-01T00:00:00Z", "--rate", "2"]
    )

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert len(lines) == 5
    times = [parse_timestamp(json.loads(line)["timestamp"]) for line in lines]
    assert times == sorted(times)
    assert len(set(times)) == 5
