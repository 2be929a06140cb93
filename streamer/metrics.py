"""The processing loop's metrics, in Prometheus form (``/metrics``), and the status log line's counters.

Each ``Metrics`` owns its own ``CollectorRegistry`` (never the global default one), so tests can run
several processors side by side. The loop moves the counters and histograms directly
(``metrics.records_consumed.inc()``); the per-partition gauges (open studies, consumer lag, age of
the oldest open study) are sampled when scraped, from callbacks the processor installs, so a
revoked partition simply stops appearing. Scrapes happen on the event loop's thread (the HTTP
server calls ``exposition()`` there), so the callbacks read the loop's state safely.

``metrics_table()`` renders the README's metrics table from the registry; a test keeps them equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "streamer_"

# No "<counter>_created" series: they double the output and dashboards do not use them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# (label values, value) pairs of a gauge sampled at scrape time.
Samples = Iterable[tuple[Sequence[str], float]]

CLOSE_REASONS = ("marker", "count", "timeout")

# Histogram buckets, in the metric's unit.
_BYTES_BUCKETS = tuple(float(1024 * 4**i) for i in range(8))  # 1 KiB .. 16 MiB
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BUILD_BUCKETS = (*_COMMIT_BUCKETS, 30.0)
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
_RESTORE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One declared metric, as the README table shows it."""

    name: str  # the exposed name (counters end in _total)
    type: str
    labels: tuple[str, ...]
    help: str


class SampledGauge(Collector):
    """A gauge whose samples come from a callback at scrape time (none until one is installed)."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], registry: CollectorRegistry
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labelnames = list(labelnames)
        self.sample: Callable[[], Samples] = tuple
        registry.register(self)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for labels, value in self.sample():
            family.add_metric(list(labels), value)
        return [family]


class Metrics:
    """Every metric of one processor, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info: dict[str, MetricInfo] = {}

        # ---- records and instances
        self.records_consumed = self._counter(
            "records_consumed", "Input records handed to the loop (every kind, good or bad)."
        )
        self.instances_accepted = self._counter(
            "instances_accepted", "DICOM instances added to a study (new, or replacing a held one)."
        )
        self.duplicate_records = self._counter(
            "duplicate_records",
            "Identical redeliveries of held instances, and markers of closed studies: ignored.",
        )
        self.updated_instances = self._counter(
            "updated_instances",
            "Instances that replaced a held one with the same SOPInstanceUID and other content.",
        )
        self.instance_warnings = self._counter(
            "instance_warnings", "Warnings raised while reading instances (odd values, kept)."
        )
        self.late_instances = self._counter(
            "late_instances",
            "Instances of a closed study: they reopen it, or are dead-lettered once it expired.",
        )
        self.reopened_studies = self._counter(
            "reopened_studies", "Closed studies reopened by a late instance."
        )
        # ---- studies
        self.open_studies = self._sampled(
            "open_studies", "Open studies, per input partition.", ("partition",)
        )
        self.studies_closed = self._counter(
            "studies_closed",
            "Studies closed, by reason: marker (no count), count (marker with instance_count "
            "reached), timeout.",
            ("reason",),
        )
        self.empty_studies = self._counter(
            "empty_studies", "Markers whose study got no instance before the timeout."
        )
        self.oldest_open_study_age = self._sampled(
            "oldest_open_study_age_seconds",
            "Seconds since the last record of the longest-idle open study (0 when none is open).",
        )
        self.state_memory = self._sampled(
            "state_memory_bytes",
            "Memory of the state stores' shared RocksDB budget, by part: block_cache, memtables "
            "(each capped; none with the SQLite engine).",
            ("part",),
        )
        # ---- output
        self.dead_letters = self._counter(
            "dead_letters",
            "Records sent to the dead-letter topic, by error type and kind (record or study).",
            ("error_type", "kind"),
        )
        self.bundles_published = self._counter(
            "bundles_published", "Bundles acknowledged by the broker."
        )
        self.bundle_bytes = self._histogram(
            "bundle_bytes", "Size of the published Bundles, in bytes.", _BYTES_BUCKETS
        )
        self.bundle_build_seconds = self._histogram(
            "bundle_build_seconds",
            "Time to build, validate and serialize a study's Bundle.",
            _BUILD_BUCKETS,
        )
        self.marker_to_publish_seconds = self._histogram(
            "marker_to_publish_seconds",
            "From the timestamp of the record that completed a study (its marker, or its last "
            "counted instance) to the broker's ack of its Bundle.",
            _LATENCY_BUCKETS,
        )
        # ---- consumer, checkpoints, partitions
        self.consumer_lag = self._sampled(
            "consumer_lag_records",
            "Records behind the end of the input partition (high watermark - position).",
            ("partition",),
        )
        self.commit_seconds = self._histogram(
            "commit_seconds",
            "Time of an offset commit (exactly once: of the transactions' commit).",
            _COMMIT_BUCKETS,
        )
        self.checkpoint_seconds = self._histogram(
            "checkpoint_seconds",
            "Time a checkpoint holds the loop (waiting for the previous one, sealing the staged changes).",
            _COMMIT_BUCKETS,
        )
        self.rebalances = self._counter(
            "rebalances", "Partition assignments received from the consumer group."
        )
        self.restore_seconds = self._histogram(
            "restore_seconds",
            "Time from a partition's assignment until its state is restored.",
            _RESTORE_BUCKETS,
        )
        self.restore_records = self._counter(
            "restore_records", "Changelog records applied while restoring partitions."
        )

    # ---- declaration -----------------------------------------------------------------------

    def _declare(self, name: str, kind: str, labels: tuple[str, ...], doc: str) -> None:
        exposed = PREFIX + name + ("_total" if kind == "counter" else "")
        self.info[PREFIX + name] = MetricInfo(exposed, kind, labels, doc)

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        self._declare(name, "counter", labels, doc)
        return Counter(PREFIX + name, doc, labels, registry=self.registry)

    def _sampled(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> SampledGauge:
        self._declare(name, "gauge", labels, doc)
        return SampledGauge(PREFIX + name, doc, labels, self.registry)

    def _histogram(self, name: str, doc: str, buckets: Sequence[float]) -> Histogram:
        self._declare(name, "histogram", (), doc)
        return Histogram(PREFIX + name, doc, registry=self.registry, buckets=buckets)

    # ---- reading ---------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, int]:
        """Non-zero counters by short name, for the status and "stopped" log lines."""
        closed = _by_label(self.studies_closed, "reason")
        dead = _by_label(self.dead_letters, "kind")
        counts = {
            "records": counter_total(self.records_consumed),
            "instances_accepted": counter_total(self.instances_accepted),
            "duplicates": counter_total(self.duplicate_records),
            "updated_instances": counter_total(self.updated_instances),
            "instance_warnings": counter_total(self.instance_warnings),
            "late_instances": counter_total(self.late_instances),
            "reopened_studies": counter_total(self.reopened_studies),
            "empty_studies": counter_total(self.empty_studies),
            "dead_letters": dead.get("record", 0),
            "dead_letter_studies": dead.get("study", 0),
            **{f"studies_closed_{reason}": closed.get(reason, 0) for reason in CLOSE_REASONS},
            "bundles_published": counter_total(self.bundles_published),
        }
        return {name: int(n) for name, n in counts.items() if n}


def counter_samples(metric: Counter) -> Iterator[tuple[dict[str, str], float]]:
    """(labels, value) of each series of a counter."""
    for family in metric.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                yield sample.labels, sample.value


def counter_total(metric: Counter) -> float:
    """A counter summed over its labels."""
    return sum(value for _, value in counter_samples(metric))


def _by_label(metric: Counter, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for labels, value in counter_samples(metric):
        out[labels[label]] = out.get(labels[label], 0.0) + value
    return out


def metrics_table() -> str:
    """The README's metrics table, made from a fresh registry (a test keeps the README equal)."""
    metrics = Metrics()
    return table(
        (metrics.info[f.name].name, f.type, metrics.info[f.name].labels, f.documentation)
        for f in metrics.registry.collect()
    )


def table(rows: Iterable[tuple[str, str, Sequence[str], str]]) -> str:
    """A README table of metrics from (exposed name, type, labels, meaning) rows."""
    lines = ["| metric | type | labels | meaning |", "|---|---|---|---|"]
    for name, kind, labels, meaning in rows:
        shown = ", ".join(f"`{label}`" for label in labels) or "(none)"
        lines.append(f"| `{name}` | {kind} | {shown} | {meaning} |")
    return "\n".join(lines) + "\n"
