"""The sink's metrics, in Prometheus form (``/metrics``), and the counters of its status log line.

One ``CollectorRegistry`` per sink (never the global one), as for the processor's ``Metrics``.
``sink_metrics_table()`` renders the README's table of them; a test keeps the two equal.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from streamer.metrics import counter_samples, counter_total, table

PREFIX = "streamer_sink_"

RETRY_REASONS = (
    "connection",
    "timeout",
    "throttled",
    "server_error",
    "conflict",
    "too_early",
    "auth",
    "unexpected",
)
ENTRY_OUTCOMES = ("created", "updated", "unchanged")
# No "<counter>_created" series (as for the processor's metrics).
disable_created_metrics()  # type: ignore[no-untyped-call]

_POST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SinkMetrics:
    """Every metric of one sink, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.labels: dict[str, tuple[str, ...]] = {}
        self.records_consumed = self._counter(
            "records_consumed",
            "Records read from the Bundles topic.",
        )
        self.bundles_posted = self._counter(
            "bundles_posted",
            "Bundles the FHIR server accepted (2xx to the transaction).",
        )
        self.entries = self._counter(
            "entries",
            "Entries of accepted Bundles, by what the server did: created, updated, unchanged.",
            ("outcome",),
        )
        self.post_retries = self._counter(
            "post_retries",
            "POSTs to be tried again, by reason: connection, timeout, throttled (429), "
            "server_error (5xx), conflict (409/412), too_early, auth (401/403/407), unexpected.",
            ("reason",),
        )
        self.bundles_rejected = self._counter(
            "bundles_rejected",
            "Records sent to the sink's dead-letter topic, by error type.",
            ("error_type",),
        )
        self.tombstones = self._counter(
            "tombstones",
            "Records without a value (a deleted study on the compacted topic): skipped.",
        )
        self.post_seconds = Histogram(
            PREFIX + "post_seconds",
            "Time of one POST of a transaction Bundle, until the answer (any answer).",
            registry=self.registry,
            buckets=_POST_BUCKETS,
        )
        self.commits = self._counter(
            "commits",
            "Offset commits of the sink's consumer group.",
        )
        for reason in RETRY_REASONS:
            self.post_retries.labels(reason)
        for outcome in ENTRY_OUTCOMES:
            self.entries.labels(outcome)

    def _counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        self.labels[PREFIX + name] = labels
        return Counter(PREFIX + name, doc, labels, registry=self.registry)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what ``/metrics`` serves)."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, int]:
        """Non-zero counters by short name, for the status and "stopped" log lines."""
        counts = {
            "records": counter_total(self.records_consumed),
            "posted": counter_total(self.bundles_posted),
            "retried": counter_total(self.post_retries),
            "rejected": counter_total(self.bundles_rejected),
            "tombstones": counter_total(self.tombstones),
            **{f"entries_{o}": _label_total(self.entries, "outcome", o) for o in ENTRY_OUTCOMES},
        }
        return {name: int(n) for name, n in counts.items() if n}


def _label_total(metric: Counter, label: str, value: str) -> float:
    return sum(v for labels, v in counter_samples(metric) if labels.get(label) == value)


def sink_metrics_table() -> str:
    """The README's table of the sink's metrics (a test keeps the README equal to it)."""
    metrics = SinkMetrics()
    return table(
        (
            f.name + ("_total" if f.type == "counter" else ""),
            f.type,
            metrics.labels.get(f.name, ()),
            f.documentation,
        )
        for f in metrics.registry.collect()
    )
