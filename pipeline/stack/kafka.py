"""A one-node Apache Kafka broker in KRaft mode, run from Maven Central jars.

The broker and its controller share one JVM, listen on 127.0.0.1 only and keep
their log segments under ``STATE_DIR/kafka``. The jars are the runtime
dependencies of ``org.apache.kafka:kafka_2.13``, fetched once with Maven.
"""

from __future__ import annotations

import base64
import logging
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from pipeline.maven import MavenError, fetch_jars
from pipeline.processes import (
    GroupStillRunningError,
    is_running,
    read_live_pid,
    read_pid_file,
    stop_group,
    write_pid_file,
)
from pipeline.settings import Settings

__all__ = ["KAFKA_VERSION", "StackError", "install_kafka", "start_kafka", "stop_kafka", "kafka_pid"]

logger = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
LOG4J_VERSION = "2.24.3"
HEAP_OPTIONS = ("-Xms256m", "-Xmx768m")

LOG4J2_CONFIG = """status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


class StackError(RuntimeError):
    """A local service could not be installed or started. The message gives the reason."""


def _home(settings: Settings) -> Path:
    return settings.state_dir / "kafka"


def _lib_dir(settings: Settings) -> Path:
    return _home(settings) / f"lib-{KAFKA_VERSION}"


def install_kafka(settings: Settings) -> Path:
    """Fetch the broker's jars with Maven unless they are present; return their folder."""
    lib = _lib_dir(settings)
    try:
        fetch_jars(
            [
                f"org.apache.kafka:kafka_2.13:{KAFKA_VERSION}",
                # Kafka 4 logs through SLF4J to Log4j 2, which needs this binding.
                f"org.apache.logging.log4j:log4j-slf4j2-impl:{LOG4J_VERSION}",
            ],
            lib,
        )
    except MavenError as exc:
        raise StackError(str(exc)) from exc
    return lib


def _write_config(settings: Settings) -> Path:
    home = _home(settings)
    config = home / "server.properties"
    host = "127.0.0.1"
    config.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@{host}:{settings.kafka_controller_port}",
                f"listeners=PLAINTEXT://{host}:{settings.kafka_port},"
                f"CONTROLLER://{host}:{settings.kafka_controller_port}",
                f"advertised.listeners=PLAINTEXT://{host}:{settings.kafka_port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={home / 'data'}",
                f"num.partitions={settings.kafka_topic_partitions}",
                # One node, so every internal topic has one replica.
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                "",
            ]
        )
    )
    (home / "log4j2.properties").write_text(LOG4J2_CONFIG)
    return config


def _java_command(settings: Settings, main_class: str, *args: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise StackError("Java is not installed. Install Java 17 (apt-get install openjdk-17-jre-headless).")
    home = _home(settings)
    return [
        java,
        *HEAP_OPTIONS,
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        "-cp",
        f"{_lib_dir(settings)}/*",
        main_class,
        *args,
    ]


def _format_storage(settings: Settings, config: Path) -> None:
    if (_home(settings) / "data" / "meta.properties").exists():
        return
    # StorageTool's parser reads a value that starts with "-" as an option and
    # then fails with "expected one argument", so such an id is drawn again.
    cluster_id = "-"
    while cluster_id.startswith("-"):
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    result = subprocess.run(
        _java_command(settings, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if result.returncode != 0:
        raise StackError("Formatting the Kafka storage failed:\n" + (result.stdout + result.stderr)[-2000:])


def _pid_file(settings: Settings) -> Path:
    return _home(settings) / "kafka.pid"


def kafka_pid(settings: Settings) -> int | None:
    """Return the pid of the broker this stack started, when it runs."""
    return read_live_pid(_pid_file(settings))


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _wait_until_ready(settings: Settings, pid: int, log_path: Path, timeout: float) -> None:
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kafka_pid(settings) != pid:
            raise StackError(f"The Kafka broker exited during start. Its log is {log_path}.")
        if port_open("127.0.0.1", settings.kafka_port):
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=settings.kafka_bootstrap_servers,
                    request_timeout_ms=5000,
                )
                try:
                    admin.list_topics()
                finally:
                    admin.close()
                return
            except KafkaError:
                pass
        time.sleep(0.5)
    raise StackError(f"The Kafka broker did not respond within {timeout:.0f} s. Its log is {log_path}.")


def start_kafka(settings: Settings, timeout: float = 120.0) -> int:
    """Start the broker unless it runs, wait until it responds, and return its pid."""
    pid = kafka_pid(settings)
    if pid is not None:
        return pid
    if port_open("127.0.0.1", settings.kafka_port) or port_open(
        "127.0.0.1", settings.kafka_controller_port
    ):
        raise StackError(
            f"Port {settings.kafka_port} or {settings.kafka_controller_port} on 127.0.0.1 is taken "
            "by another program. Stop it, or choose free ports with WORKBENCH_KAFKA_PORT and "
            "WORKBENCH_KAFKA_CONTROLLER_PORT."
        )

    install_kafka(settings)
    config = _write_config(settings)
    _format_storage(settings, config)

    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / "kafka.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            _java_command(settings, "kafka.Kafka", str(config)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    write_pid_file(_pid_file(settings), process.pid)
    logger.info("started Kafka %s (pid %d) on 127.0.0.1:%d", KAFKA_VERSION, process.pid, settings.kafka_port)
    _wait_until_ready(settings, process.pid, log_path, timeout)
    return process.pid


def stop_kafka(settings: Settings) -> bool:
    """Stop the broker this stack started; return False when none ran."""
    record = read_pid_file(_pid_file(settings))
    if record is None or not is_running(*record):
        _pid_file(settings).unlink(missing_ok=True)
        return False
    pid, start_ticks = record
    try:
        stop_group(pid, start_ticks, timeout=30.0)
    except GroupStillRunningError as exc:
        raise StackError(
            f"The Kafka broker did not stop: {exc} Inspect it with `ps -o pid,stat,cmd -g {pid}`."
        ) from exc
    _pid_file(settings).unlink(missing_ok=True)
    logger.info("stopped Kafka (pid %d)", pid)
    return True
