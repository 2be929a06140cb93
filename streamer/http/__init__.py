"""The operations port: ``/metrics`` (Prometheus), ``/healthz`` (the loop moves), ``/readyz``
(partitions assigned and restored), on STREAMER_HTTP_HOST:STREAMER_HTTP_PORT."""

from streamer.http.probes import MIN_STALL_SECONDS, Observed, Response, stall_limit
from streamer.http.server import StatusServer

__all__ = ["MIN_STALL_SECONDS", "Observed", "Response", "StatusServer", "stall_limit"]
