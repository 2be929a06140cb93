"""The HAPI FHIR JPA server's jars, fetched once from Maven Central, and ``FhirServer.java`` compiled.

Maven resolves HAPI's JPA server modules with all their runtime dependencies from a tiny generated
POM that imports HAPI's parent POM (``ca.uhn.hapi.fhir:hapi-fhir``) as the version BOM, and copies
them into ``$STREAMER_CACHE_DIR/hapi-jpa-<version>/libs`` (default root ``~/.cache/streamer``);
``javac`` then compiles ``FhirServer.java`` against them into ``classes/<hash of the source>``. No
Maven build of our own runs (``mvn compile`` would first need the compiler plugin downloaded).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# The HAPI release whose JPA server runs R4B on Java 17 with Jetty 12 (jakarta servlet 6).
HAPI_JPA_VERSION = "8.8.0"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = ".complete"  # lists the jars of a complete fetch; written last
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
    env = os.environ.get("STREAMER_CACHE_DIR")
    root = Path(env) if env else Path.home() / ".cache" / "streamer"
    return root / f"hapi-jpa-{version}"


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


def jars_complete(libs: Path) -> bool:
    """Whether ``libs`` holds a finished fetch (its marker lists only jars that are there)."""
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text().splitlines() if n]
    return bool(names) and all((libs / n).is_file() for n in names)


def ensure_jars(version: str = HAPI_JPA_VERSION) -> Path:
    """The ``libs`` dir with HAPI's JPA server and all its runtime jars (≈ 255 jars, ≈ 300 MB).

    A complete cache is reused without touching Maven; a lock file serialises concurrent fetches.
    """
    home = fhir_cache_dir(version)
    libs = home / "libs"
    if jars_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise FhirServerUnavailable(
            f"mvn not on PATH: needed once to fetch HAPI FHIR {version} into {libs}"
        )
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_complete(libs):  # another process finished while we waited
            return libs
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=home) as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(pom(version))
            out = work / "libs"
            cmd = [
                mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(work / "pom.xml"),
                f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={out}", "-DincludeScope=runtime",
            ]  # fmt: skip
            res = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1800
            )
            jars = sorted(p.name for p in out.glob("*.jar")) if out.is_dir() else []
            wanted = {f"{a}-{version}.jar" for a in _HAPI_ARTIFACTS}
            if res.returncode != 0 or not wanted <= set(jars):
                tail = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
                raise FhirServerUnavailable(
                    f"fetching HAPI FHIR {version} with Maven failed (exit {res.returncode}, "
                    f"missing {sorted(wanted - set(jars))}):\n{tail}"
                )
            shutil.rmtree(libs, ignore_errors=True)
            out.rename(libs)
        (libs / _MARKER).write_text("\n".join(jars) + "\n")  # last: the fetch is complete
    return libs


def _classpath(libs: Path) -> str:
    names = [n for n in (libs / _MARKER).read_text().splitlines() if n]
    return os.pathsep.join(str(libs / n) for n in names)


def ensure_server(version: str = HAPI_JPA_VERSION) -> tuple[str, str]:
    """Fetch the jars and compile ``FhirServer.java`` (once per source hash); (java, classpath)."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None or javac is None:
        raise FhirServerUnavailable(
            "java and javac (JDK 17+) must be on PATH for the HAPI FHIR JPA server"
        )
    libs = ensure_jars(version)
    digest = hashlib.sha256(SOURCE.read_bytes() + version.encode()).hexdigest()[:16]
    classes = fhir_cache_dir(version) / "classes" / digest
    if not (classes / f"{MAIN_CLASS}.class").is_file():
        classes.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="javac-", dir=classes.parent) as tmp:
            cmd = [javac, "-nowarn", "-encoding", "UTF-8", "-d", tmp, "-cp", _classpath(libs)]
            res = subprocess.run(
                [*cmd, str(SOURCE)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if res.returncode != 0:
                raise FhirServerUnavailable(
                    f"javac {SOURCE.name} failed:\n{res.stdout}{res.stderr}"
                )
            try:
                Path(tmp).rename(classes)
            except OSError:  # another process compiled the same source meanwhile
                if not (classes / f"{MAIN_CLASS}.class").is_file():
                    raise
    return java, os.pathsep.join([str(classes), _classpath(libs)])
