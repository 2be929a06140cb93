"""The HAPI FHIR JPA server's jars, fetched once from Maven Central, and ``FhirServer.java`` compiled.

Maven resolves HAPI's JPA server modules with all their runtime dependencies from a tiny generated
POM that imports HAPI's parent POM (``ca.uhn.hapi.fhir:hapi-fhir``) as the version BOM, and copies
them into ``$STREAMER_CACHE_DIR/hapi-jpa-<version>/libs`` (default root ``~/.cache/streamer``);
``javac`` then compiles ``FhirServer.java`` against them into ``classes/<hash of the source>``. No
Maven build of our own runs (``mvn compile`` would first need the compiler plugin downloaded).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from streamer import maven

# The HAPI release whose JPA server runs R4B on Java 17 with Jetty 12 (jakarta servlet 6).
HAPI_JPA_VERSION = "8.8.0"
SOURCE = Path(__file__).with_name("FhirServer.java")
MAIN_CLASS = "FhirServer"

# HAPI modules (their version is HAPI's); the rest take their version from HAPI's BOM.
_HAPI_ARTIFACTS = (
    "hapi-fhir-jpaserver-base",
    "hapi-fhir-structures-r4b",
    "hapi-fhir-storage-batch2-jobs",
)
_MANAGED_ARTIFACTS = (
    ("com.h2database", "h2"),
    ("org.eclipse.jetty.ee10", "jetty-ee10-servlet"),
    ("ch.qos.logback", "logback-classic"),
)

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamer</groupId>
  <artifactId>hapi-jpa-server-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>ca.uhn.hapi.fhir</groupId><artifactId>hapi-fhir</artifactId>
        <version>{version}</version><type>pom</type><scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
{dependencies}  </dependencies>
</project>
"""


class FhirServerUnavailable(RuntimeError):
    """java, javac or (on a cold cache) mvn is missing, or fetching/compiling failed."""


def fhir_cache_dir(version: str = HAPI_JPA_VERSION) -> Path:
    """``$STREAMER_CACHE_DIR/hapi-jpa-<version>`` (default root ``~/.cache/streamer``)."""
    return maven.cache_root() / f"hapi-jpa-{version}"


def pom(version: str = HAPI_JPA_VERSION) -> str:
    """The generated POM: HAPI's parent POM as the BOM, the JPA server modules, H2, Jetty, logback."""
    deps = [
        "    <dependency>\n"
        f"      <groupId>ca.uhn.hapi.fhir</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version>\n"
        "    </dependency>\n"
        for artifact in _HAPI_ARTIFACTS
    ]
    deps += [
        "    <dependency>\n"
        f"      <groupId>{group}</groupId><artifactId>{artifact}</artifactId>\n"
        "    </dependency>\n"
        for group, artifact in _MANAGED_ARTIFACTS
    ]
    return _POM.format(version=version, dependencies="".join(deps))


def jars_complete(libs: Path, version: str = HAPI_JPA_VERSION) -> bool:
    """Whether ``libs`` holds a finished fetch of this version's POM."""
    return maven.jars_complete(libs, pom(version))


def ensure_jars(version: str = HAPI_JPA_VERSION) -> Path:
    """The ``libs`` dir with HAPI's JPA server and all its runtime jars (≈ 255 jars, ≈ 300 MB).

    A complete cache is reused without touching Maven; a lock file serialises concurrent fetches.
    """
    return maven.ensure_jars(
        fhir_cache_dir(version),
        pom(version),
        [f"{a}-{version}.jar" for a in _HAPI_ARTIFACTS],
        what=f"HAPI FHIR {version}",
        error=FhirServerUnavailable,
    )


def ensure_server(version: str = HAPI_JPA_VERSION) -> tuple[str, str]:
    """Fetch the jars and compile ``FhirServer.java`` (once per source hash); (java, classpath)."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None or javac is None:
        raise FhirServerUnavailable(
            "java and javac (JDK 17+) must be on PATH for the HAPI FHIR JPA server"
        )
    libs = ensure_jars(version)
    classpath = maven.compile_java(
        SOURCE,
        MAIN_CLASS,
        fhir_cache_dir(version) / "classes",
        libs,
        salt=version,
        error=FhirServerUnavailable,
    )
    return java, classpath
