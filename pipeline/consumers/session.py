"""The SparkSession the consumers run in, with the Kafka connector on its classpath."""

from __future__ import annotations

import logging
import os
import sys
import zipfile
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from pipeline.maven import fetch_jars
from pipeline.settings import Settings

__all__ = ["KAFKA_CONNECTOR", "build_session"]

logger = logging.getLogger(__name__)

# The connector must match the Spark version exactly.
KAFKA_CONNECTOR = f"org.apache.spark:spark-sql-kafka-0-10_2.13:{pyspark.__version__}"

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PYSPARK_JARS = Path(pyspark.__file__).resolve().parent / "jars"


def _connector_jars(settings: Settings) -> list[Path]:
    """Fetch the Kafka connector once; leave out the jars pyspark already ships."""
    target = settings.state_dir / "spark" / f"kafka-connector-{pyspark.__version__}"
    shipped = {path.name for path in PYSPARK_JARS.glob("*.jar")}
    return fetch_jars([KAFKA_CONNECTOR], target, exclude=shipped)


def _package_code(settings: Settings, app_name: str) -> Path:
    """Zip the project's Python packages so that executors on other hosts can import them.

    Each consumer gets its own archive: Spark fails a task when a file it
    already shipped changes, so two consumers must never rewrite one file.
    """
    archive = settings.state_dir / "spark" / app_name / "workbench-code.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(f".workbench-code.{os.getpid()}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as bundle:
        for package in ("pipeline", "models"):
            for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
                bundle.write(path, path.relative_to(PROJECT_ROOT))
    partial.replace(archive)
    return archive


def build_session(settings: Settings, app_name: str) -> SparkSession:
    """Create the SparkSession for one consumer on ``settings.spark_master``."""
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars", ",".join(str(jar) for jar in _connector_jars(settings)))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.streaming.stopGracefullyOnShutdown", "true")
    )
    if settings.spark_master.startswith("local"):
        # Keep the local driver on loopback; a cluster's executors must reach
        # the driver, so there the address is left to Spark or spark-defaults.
        # Local Python workers use this interpreter, so they see the same
        # packages. SparkContext reads PYSPARK_PYTHON, and a value already
        # set is kept.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    spark.sparkContext.addPyFile(str(_package_code(settings, app_name)))
    logger.info(
        "Spark %s session on %s with %s", pyspark.__version__, settings.spark_master, KAFKA_CONNECTOR
    )
    return spark
