"""The Apache Kafka broker jars, fetched once from Maven Central into a local cache.

Maven resolves ``org.apache.kafka:kafka_2.13`` with all its runtime dependencies from a tiny POM,
so no Kafka download or unpacking step is needed; ``java -cp 'libs/*'`` runs the broker.
"""

from __future__ import annotations

from pathlib import Path

from streamer import maven

# A 4.x release that resolves from Maven Central with all its dependencies and runs on Java 17.
DEFAULT_KAFKA_VERSION = "4.1.1"
# Kafka 4.1 logs through slf4j 1.7 + log4j 2.24.3; pin the binding and core to one version so a
# newer Kafka pulling another log4j cannot leave a mismatched pair on the classpath.
_LOG4J_VERSION = "2.24.3"

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
    return maven.cache_root() / f"kafka-{version}" / "libs"


def ensure_kafka_jars(version: str = DEFAULT_KAFKA_VERSION) -> Path:
    """Copy ``org.apache.kafka:kafka_2.13:<version>`` and its runtime jars into the cache.

    Returns the ``libs`` dir. A complete cache (marker file written last) is reused without
    touching Maven; a lock file serialises concurrent fetches (e.g. parallel test sessions).
    """
    return maven.ensure_jars(
        kafka_cache_dir(version).parent,
        _POM.format(kafka=version, log4j=_LOG4J_VERSION),
        [f"kafka_2.13-{version}.jar"],
        what=f"Apache Kafka {version} jars",
        timeout=900,
    )
