"""The Apache Kafka broker jars, fetched once from Maven Central into a local cache.

Maven resolves ``org.apache.kafka:kafka_2.13`` with all its runtime dependencies from a tiny POM,
so no Kafka download or unpacking step is needed; ``java -cp 'libs/*'`` runs the broker.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# A 4.x release that resolves from Maven Central with all its dependencies and runs on Java 17.
DEFAULT_KAFKA_VERSION = "4.1.1"
# Kafka 4.1 logs through slf4j 1.7 + log4j 2.24.3; pin the binding and core to one version so a
# newer Kafka pulling another log4j cannot leave a mismatched pair on the classpath.
_LOG4J_VERSION = "2.24.3"
_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# Lists the jars of a complete fetch; written last, so a half-done fetch is never reused.
_MARKER = ".complete"

_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamer</groupId>
  <artifactId>kafka-broker-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>{log4j}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-api</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def kafka_cache_dir(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Where the jars of a Kafka version live: ``$STREAMER_CACHE_DIR`` or ``~/.cache/streamer``."""
    env = os.environ.get("STREAMER_CACHE_DIR")
    root = Path(env) if env else Path.home() / ".cache" / "streamer"
    return root / f"kafka-{version}" / "libs"


def ensure_kafka_jars(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Copy ``org.apache.kafka:kafka_2.13:<version>`` and its runtime jars into the cache.

    Returns the ``libs`` dir. A complete cache (marker file written last) is reused without
    touching Maven; a lock file serialises concurrent fetches (e.g. parallel test sessions).
    """
    libs = kafka_cache_dir(version)
    if _jars_complete(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("mvn not found on PATH: needed once to fetch the Apache Kafka jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with (libs.parent / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _jars_complete(libs):  # another process finished while we waited
            return libs
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=libs.parent) as tmp:
            jars = _fetch(mvn, version, Path(tmp))
            shutil.rmtree(libs, ignore_errors=True)
            (Path(tmp) / "libs").rename(libs)
        # Written last: its presence means every jar it lists is in place.
        (libs / _MARKER).write_text("\n".join(jars) + "\n")
    return libs


def _jars_complete(libs: Path) -> bool:
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    names = [n for n in marker.read_text().splitlines() if n]
    return bool(names) and all((libs / n).is_file() for n in names)


def _fetch(mvn: str, version: str, work: Path) -> list[str]:
    """Let Maven copy the jars into ``work/libs``; returns their file names."""
    (work / "pom.xml").write_text(_POM.format(kafka=version, log4j=_LOG4J_VERSION))
    out = work / "libs"
    cmd = [
        mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(work / "pom.xml"),
        f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={out}", "-DincludeScope=runtime",
    ]  # fmt: skip
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
    jars = sorted(p.name for p in out.glob("*.jar")) if out.is_dir() else []
    if res.returncode != 0 or f"kafka_2.13-{version}.jar" not in jars:
        output = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
        raise RuntimeError(
            f"fetching Apache Kafka {version} jars with Maven failed "
            f"(exit {res.returncode}):\n{output}"
        )
    return jars
