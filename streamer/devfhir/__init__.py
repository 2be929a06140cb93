"""A throw-away HAPI FHIR JPA server (R4B, in-memory H2) for the sink's tests; never used by the processor.

The jars come from Maven Central (:mod:`.hapi_jpa`, cached like the Kafka jars), ``FhirServer.java``
is compiled against them with ``javac``, and :func:`start_fhir_server` runs it with the local
``java`` (:mod:`.server`). Run ``python -m streamer.devfhir --help`` for the command line.
"""

from __future__ import annotations

from streamer.devfhir.hapi_jpa import (
    HAPI_JPA_VERSION,
    FhirServerUnavailable,
    ensure_jars,
    ensure_server,
    fhir_cache_dir,
)
from streamer.devfhir.server import LocalFhirServer, metadata_ok, start_fhir_server

__all__ = [
    "HAPI_JPA_VERSION",
    "FhirServerUnavailable",
    "LocalFhirServer",
    "ensure_jars",
    "ensure_server",
    "fhir_cache_dir",
    "metadata_ok",
    "start_fhir_server",
]
