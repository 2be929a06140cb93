"""Deterministic resource ids and Bundle fullUrls.

Default scheme: UUIDv5 (RFC 9562 §5.5) in a fixed project namespace over the resource type and its business
identifiers, so re-publishing the same study gives byte-identical Bundles and shared resources (a Patient with the
same PatientID and IssuerOfPatientID, a Device with the same DeviceUID) get the same id in every Bundle.

``MappingOptions.id_function`` overrides the default; it is called as ``id_function(resource_type, dataset_view,
extra)`` like the seed library's ``id_function(resource_type, ds, extra="")``; the result must be a FHIR ``id``
(R4B datatypes: ``[A-Za-z0-9\\-\\.]{1,64}``).

fullUrl: ``urn:uuid:<id>`` when the id is a UUID; otherwise ``urn:uuid:<uuid5(Type/id)>``. References inside the
Bundle use that fullUrl; the server resolves it to ``Type/id`` from the entry's ``PUT Type/id`` (R4B http.html
#trules, "Resolving references in Bundles").
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from streamer.errors import MappingError
from streamer.fhir.options import MappingOptions

NAMESPACE = uuid.UUID("6f1c2b0e-3d6a-5b9e-9a51-2f3c8e7d4a10")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_NAMESPACE_BYTES = NAMESPACE.bytes
# a hex digit with its two high bits set to the RFC 9562 variant ``10``
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def uuid5(*parts: str) -> str:
    """UUIDv5 over ``parts`` joined with a separator that cannot occur in DICOM UIDs or keys (``\\x1f``).

    Same value as ``str(uuid.uuid5(NAMESPACE, name))`` (RFC 9562 §5.5: SHA-1 of namespace + name, version and
    variant bits set), in a third of the time: no ``uuid.UUID`` object is built (several per Bundle).
    """
    h = hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(parts).encode()).hexdigest()
    # on the hex digits: version nibble 5 (digit 12), variant bits 10 (digit 16, table below)
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


def is_fhir_id(value: object) -> bool:
    """True when ``value`` is a valid FHIR ``id``."""
    return isinstance(value, str) and _FHIR_ID.fullmatch(value) is not None


def resource_id(
    resource_type: str,
    options: MappingOptions,
    view: Any,
    extra: str,
    default_parts: tuple[str, ...],
) -> str:
    """The id of one resource: ``options.id_function`` when set, else UUIDv5 of ``default_parts``.

    A failing or invalid ``id_function`` raises MappingError naming the resource type (never the value, which
    may hold patient data).
    """
    if options.id_function is None:
        return uuid5(resource_type, *default_parts)
    # Called as returning object, not str: user code may return anything, and the check below must
    # see it (the compiled build would reject a non-str with a TypeError before the check).
    id_function: Callable[[str, Any, str], object] = options.id_function
    try:
        result = id_function(resource_type, view, extra)
    except Exception as exc:  # user code; reported as a typed error
        raise MappingError(f"id_function raised {type(exc).__name__} for {resource_type}") from exc
    if not is_fhir_id(result):
        raise MappingError(
            f"id_function returned an invalid FHIR id for {resource_type} "
            "(must match [A-Za-z0-9-.]{1,64})"
        )
    return str(result)


def full_url(resource_type: str, rid: str) -> str:
    """The entry fullUrl (and in-Bundle reference) for ``resource_type``/``rid``."""
    if _UUID.fullmatch(rid):
        return f"urn:uuid:{rid}"
    return f"urn:uuid:{uuid5('fullUrl', resource_type, rid)}"


def reference(resource: Mapping[str, Any]) -> dict[str, str]:
    """A Reference to a resource dict of this Bundle."""
    return {"reference": full_url(str(resource["resourceType"]), str(resource["id"]))}
