"""FHIR R4B validation of finished Bundles with ``fhir.resources`` (the only place that imports its models).

The verdict is always that of ``fhir.resources.R4B.bundle.Bundle.model_validate``: ``fast_validation``
proves most Bundles valid from learned node shapes plus per-value primitive checks, and hands every other
Bundle (new shapes, any doubtful value) to ``Bundle.model_validate`` itself, whose errors become
MappingError. See ``fast_validation`` for why the fast path cannot disagree.

Errors are reported by location and error type only: input values may hold patient data.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from streamer.errors import MappingError
from streamer.fhir import fast_validation


def _details(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'][:8])}: {e['type']}" for e in exc.errors()[:5]
    )


def validate_bundle(bundle: dict[str, Any], what: str) -> None:
    """Validate a Bundle dict as ``Bundle.model_validate`` would; MappingError (no values) if invalid."""
    try:
        fast_validation.validate(bundle)
    except ValidationError as exc:
        raise MappingError(f"{what}: Bundle failed FHIR R4B validation ({_details(exc)})") from None
    # fhir_core lets some odd inputs escape as KeyError, AttributeError, ...: still a rejection
    except Exception as exc:  # noqa: BLE001
        raise MappingError(
            f"{what}: Bundle failed FHIR R4B validation ({_odd_details(bundle, exc)})"
        ) from None


def _odd_details(bundle: Any, exc: Exception) -> str:
    """Location of an unknown entry resourceType (fhir_core's dispatch raises KeyError), else the type."""
    entries = bundle.get("entry") if isinstance(bundle, dict) else None
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        rtype = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(rtype, str):
            try:
                get_fhir_model_class(rtype)
            except (KeyError, ValueError):
                return f"entry.{i}.resource.resourceType: unknown resource type"
    return type(exc).__name__


def clear_cache() -> None:
    """Forget every learned shape and checked value (tests)."""
    fast_validation.clear()
