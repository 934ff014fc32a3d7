from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from pipeline import maven
from pipeline.maven import MavenError, fetch_jars

NAMESPACE = {"m": "http://maven.apache.org/POM/4.0.0"}


def test_pom_lists_each_coordinate() -> None:
    pom = ElementTree.fromstring(maven._pom(["g.one:a-one:1.0", "g.two:a-two:2.0"]))

    dependencies = [
        tuple(dependency.find(f"m:{tag}", NAMESPACE).text for tag in ("groupId", "artifactId", "version"))
        for dependency in pom.iterfind("m:dependencies/m:dependency", NAMESPACE)
    ]
    assert dependencies == [("g.one", "a-one", "1.0"), ("g.two", "a-two", "2.0")]


def test_fetch_jars_without_maven_names_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    with pytest.raises(MavenError, match=r"Maven \(mvn\) is not installed.*make setup"):
        fetch_jars(["g:a:1"], tmp_path / "jars")
    assert not (tmp_path / "jars").exists()


def test_fetch_jars_existing_folder_is_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "jars"
    target.mkdir()
    (target / "b.jar").write_bytes(b"")
    (target / "a.jar").write_bytes(b"")
    # No Maven on PATH: a complete folder must not trigger a fetch.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert fetch_jars(["g:a:1"], target) == [target / "a.jar", target / "b.jar"]
