"""The FHIR sink: consumes the Bundles topic in its own group and POSTs each transaction Bundle to a
FHIR server (``python -m streamer sink``).

* ``client``: the HTTP side (httpx): one POST, the answer sorted into accepted, rejected, retry.
* ``retry``: exponential backoff with jitter, capped; Retry-After.
* ``loop``: poll, post with retries, dead-letter rejections, commit only what is done.
* ``metrics``: its Prometheus counters; ``ports``: what it needs of Kafka and of the server.

No aiokafka here: ``kafka/sink_io.py`` is its Kafka side, ``cli/sink.py`` wires both.
"""
