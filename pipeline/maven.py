"""Fetch jars and their runtime dependencies from Maven Central with Maven.

The Kafka broker and Spark's Kafka connector both come from Maven Central.
A fetch is done once into a folder of its own and reused. A file lock makes
concurrent callers (two consumers starting together) wait for one fetch, and
the folder appears only when complete, so an interrupted fetch is retried.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["MavenError", "fetch_jars"]

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 900


class MavenError(RuntimeError):
    """Maven is missing or could not fetch the artifacts. The message names them."""


def _pom(coordinates: Sequence[str]) -> str:
    dependencies = []
    for coordinate in coordinates:
        group, artifact, version = coordinate.split(":")
        dependencies.append(
            "    <dependency>"
            f"<groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
            f"<version>{version}</version></dependency>"
        )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>fraud-workbench</groupId>\n"
        "  <artifactId>runtime</artifactId>\n"
        "  <version>1</version>\n"
        "  <packaging>pom</packaging>\n"
        "  <dependencies>\n" + "\n".join(dependencies) + "\n  </dependencies>\n</project>\n"
    )


def fetch_jars(
    coordinates: Sequence[str], target: Path, exclude: Iterable[str] = ()
) -> list[Path]:
    """Fetch ``coordinates`` (``group:artifact:version``) with their runtime dependencies.

    Parameters
    ----------
    coordinates
        The artifacts to fetch.
    target
        Folder that receives the jars. When it exists, nothing is fetched.
    exclude
        Jar file names to leave out, for example those already on the
        classpath of the program that will load the jars.

    Returns
    -------
    list of Path
        The jars in ``target``, sorted by name.

    Raises
    ------
    MavenError
        When ``mvn`` is not installed or the fetch fails.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_dir():
            _fetch(coordinates, target, set(exclude))
    return sorted(target.glob("*.jar"))


def _fetch(coordinates: Sequence[str], target: Path, exclude: set[str]) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MavenError(
            f"Maven (mvn) is not installed, and it is needed once to fetch {', '.join(coordinates)}. "
            "Run `make setup` or `apt-get install maven`."
        )
    work = target.parent / f".{target.name}.partial"
    shutil.rmtree(work, ignore_errors=True)
    jars = work / "jars"
    jars.mkdir(parents=True)
    (work / "pom.xml").write_text(_pom(coordinates))

    logger.info("fetching %s with Maven into %s", ", ".join(coordinates), target)
    result = subprocess.run(
        [
            mvn, "-q", "-B", "-f", str(work / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={jars}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
        timeout=FETCH_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise MavenError(
            f"Maven could not fetch {', '.join(coordinates)} (exit {result.returncode}):\n"
            + (result.stdout + result.stderr)[-2000:]
        )
    for jar in jars.glob("*.jar"):
        if jar.name in exclude:
            jar.unlink()
    os.replace(jars, target)
    shutil.rmtree(work, ignore_errors=True)
