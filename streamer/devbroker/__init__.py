"""Throw-away local Kafka-protocol brokers for the demo and the tests; never used by the processor.

Two kinds:

* **Tansu** (:mod:`.tansu`): in memory, starts in milliseconds, no idempotent/transactional
  producer and no ``read_committed``.
* **Apache Kafka 4.x** (:mod:`.apache_kafka`): a single KRaft node from the Maven Central jars
  (:mod:`.kafka_jars`) and the local ``java``; slower to start, but the real thing.

Run ``python -m streamer.devbroker --help`` for the command line.
"""

from __future__ import annotations

from streamer.devbroker.apache_kafka import start_apache_kafka
from streamer.devbroker.kafka_jars import DEFAULT_KAFKA_VERSION, ensure_kafka_jars, kafka_cache_dir
from streamer.devbroker.process import BrokerKind, LocalBroker
from streamer.devbroker.tansu import start_tansu, tansu_binary

__all__ = [
    "DEFAULT_KAFKA_VERSION",
    "BrokerKind",
    "LocalBroker",
    "ensure_kafka_jars",
    "kafka_cache_dir",
    "start_apache_kafka",
    "start_tansu",
    "tansu_binary",
]
