"""The local HAPI FHIR server's build inputs (no Java needed): the POM, the cache layout."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streamer.devfhir.hapi_jpa import (
    HAPI_JPA_VERSION,
    SOURCE,
    fhir_cache_dir,
    pom,
)

NS = {"m": "http://maven.apache.org/POM/4.0.0"}


def test_the_pom_imports_hapis_parent_pom_as_the_bom() -> None:
    root = ET.fromstring(pom())
    [bom] = root.findall("m:dependencyManagement/m:dependencies/m:dependency", NS)
    assert bom.findtext("m:artifactId", namespaces=NS) == "hapi-fhir"
    assert bom.findtext("m:version", namespaces=NS) == HAPI_JPA_VERSION
    assert (bom.findtext("m:type", namespaces=NS), bom.findtext("m:scope", namespaces=NS)) == (
        "pom",
        "import",
    )
    deps = {
        d.findtext("m:artifactId", namespaces=NS): d.findtext("m:version", namespaces=NS)
        for d in root.findall("m:dependencies/m:dependency", NS)
    }
    assert deps["hapi-fhir-jpaserver-base"] == HAPI_JPA_VERSION
    assert deps["hapi-fhir-structures-r4b"] == HAPI_JPA_VERSION
    assert deps["jetty-ee10-servlet"] is None  # its version comes from the BOM
    assert "h2" in deps


def test_cache_dir_follows_streamer_cache_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMER_CACHE_DIR", str(tmp_path))
    assert fhir_cache_dir() == tmp_path / f"hapi-jpa-{HAPI_JPA_VERSION}"


def test_the_server_source_ships_with_the_package() -> None:
    text = SOURCE.read_text()
    assert "public final class FhirServer" in text
    assert "ClientIdStrategyEnum.ANY" in text
