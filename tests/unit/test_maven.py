"""The jar cache of the Java helpers (`streamer/maven.py`), without Maven: what counts as fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer import maven


def test_a_fetch_counts_only_with_its_marker_every_jar_and_the_same_pom(tmp_path: Path) -> None:
    assert not maven.jars_complete(tmp_path)
    (tmp_path / "a.jar").write_bytes(b"")
    (tmp_path / ".complete").write_text("a.jar\nb.jar\n")
    assert not maven.jars_complete(tmp_path)  # b.jar is missing
    (tmp_path / "b.jar").write_bytes(b"")
    assert maven.jars_complete(tmp_path)
    # Asked for a POM: only a fetch of that very POM counts (a changed dependency fetches again).
    assert not maven.jars_complete(tmp_path, "<project>v1</project>")
    (tmp_path / "pom.xml").write_text("<project>v1</project>")
    assert maven.jars_complete(tmp_path, "<project>v1</project>")
    assert not maven.jars_complete(tmp_path, "<project>v2</project>")
    assert maven.classpath(tmp_path).split(":") == [
        str(tmp_path / "a.jar"),
        str(tmp_path / "b.jar"),
    ]


def test_the_cache_root_follows_streamer_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(tmp_path))
    assert maven.cache_root() == tmp_path
    monkeypatch.delenv("STREAMER_CACHE_DIR")
    assert maven.cache_root() == Path.home() / ".cache" / "streamer"


def test_a_complete_cache_is_used_without_maven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    libs = tmp_path / "libs"
    libs.mkdir()
    (libs / "x-1.jar").write_bytes(b"")
    (libs / "pom.xml").write_text("<project/>")
    (libs / ".complete").write_text("x-1.jar\n")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no mvn to be found
    assert maven.ensure_jars(tmp_path, "<project/>", ["x-1.jar"], what="x") == libs
    with pytest.raises(LookupError, match="mvn not on PATH: needed once to fetch x"):
        maven.ensure_jars(
            tmp_path, "<project>other</project>", ["x-1.jar"], what="x", error=LookupError
        )
