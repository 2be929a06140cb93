"""FHIR R4B validation of finished Bundles with ``fhir.resources`` (the only place that imports its models).

Every Bundle goes through ``Bundle.model_validate``. Two content-addressed caches spare repeated work, without
changing the outcome (validation of a FHIR element depends only on its own content):

- resources: each entry's resource is validated with its own model class first; a small resource (≤ 8 KB of
  JSON) whose bytes equal one validated before (the same Device, Endpoint or unchanged Patient in many
  Bundles) reuses that validated model, and ``Bundle.model_validate`` accepts the model instance as the entry's
  resource;
- fragments: inside a resource, the recurring coded elements at the paths of ``_FRAGMENTS`` (modality and
  body-site Codings, identifier types, performer functions, vital-sign codes, ...) are validated once per
  distinct content with their datatype class and handed to the resource model as model instances.

Errors are reported by location and error type only: input values may hold patient data.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from pydantic import BaseModel, ValidationError

from streamer.errors import MappingError

_CACHE_SIZE = 256  # validated resource models take about 10x their JSON size in memory
_MAX_CACHED_BYTES = 8192  # big resources (an ImagingStudy with many instances) rarely repeat
_FRAGMENT_CACHE_SIZE = 4096

# Where recurring coded elements sit in the resources this package builds: (path, datatype). ``*`` is every
# item of a list. A path that is absent in a resource is skipped.
_FRAGMENTS: dict[str, tuple[tuple[tuple[str, ...], type[BaseModel]], ...]] = {
    "ImagingStudy": (
        (("modality", "*"), Coding),
        (("identifier", "*", "type"), CodeableConcept),
        (("series", "*", "modality"), Coding),
        (("series", "*", "bodySite"), Coding),
        (("series", "*", "laterality"), Coding),
        (("series", "*", "performer", "*", "function"), CodeableConcept),
        (("series", "*", "instance", "*", "sopClass"), Coding),
    ),
    "Patient": ((("identifier", "*", "type"), CodeableConcept),),
    "Device": (
        (("identifier", "*", "type"), CodeableConcept),
        (("type",), CodeableConcept),
    ),
    "Observation": (
        (("category", "*"), CodeableConcept),
        (("code",), CodeableConcept),
    ),
}

_cache: OrderedDict[bytes, BaseModel] = OrderedDict()
_fragments: dict[tuple[type[BaseModel], bytes], BaseModel] = {}
_lock = Lock()


class _FragmentError(Exception):
    """A fragment failed validation; carries the error text for the caller's location."""


def _details(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{prefix}{'.'.join(str(p) for p in e['loc'][:8])}: {e['type']}" for e in exc.errors()[:5]
    )


def _fragment(cls: type[BaseModel], value: dict[str, Any], where: str) -> BaseModel:
    key = (cls, orjson.dumps(value))
    model = _fragments.get(key)
    if model is None:
        try:
            model = cls.model_validate(value)
        except ValidationError as exc:
            raise _FragmentError(_details(exc, where)) from None
        with _lock:
            if len(_fragments) >= _FRAGMENT_CACHE_SIZE:
                _fragments.clear()
            _fragments[key] = model
    return model


def _swap(node: Any, path: tuple[str, ...], cls: type[BaseModel], where: str) -> Any:
    """``node`` with the dict at ``path`` replaced by its validated model (copies along the path only)."""
    if not path:
        return _fragment(cls, node, where) if isinstance(node, dict) else node
    head, rest = path[0], path[1:]
    if head == "*":
        if not isinstance(node, list):
            return node
        return [_swap(v, rest, cls, f"{where}{i}.") for i, v in enumerate(node)]
    if not isinstance(node, dict) or head not in node:
        return node
    out = dict(node)
    out[head] = _swap(node[head], rest, cls, f"{where}{head}.")
    return out


def _resource_model(resource: dict[str, Any], where: str) -> BaseModel:
    key = orjson.dumps(resource)
    with _lock:
        model = _cache.get(key)
        if model is not None:
            _cache.move_to_end(key)
            return model
    rtype = str(resource.get("resourceType"))
    try:
        cls = get_fhir_model_class(rtype)
    except (KeyError, ValueError) as exc:
        raise MappingError(f"Bundle failed FHIR R4B validation ({where}resourceType)") from exc
    prepared: Any = resource
    try:
        for path, datatype in _FRAGMENTS.get(rtype, ()):
            prepared = _swap(prepared, path, datatype, where)
        model = cls.model_validate(prepared)
    except _FragmentError as exc:
        raise MappingError(f"Bundle failed FHIR R4B validation ({exc})") from None
    except ValidationError as exc:
        raise MappingError(f"Bundle failed FHIR R4B validation ({_details(exc, where)})") from None
    if len(key) <= _MAX_CACHED_BYTES:
        with _lock:
            _cache[key] = model
            if len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return model


def validate_bundle(bundle: dict[str, Any], what: str) -> None:
    """Validate a Bundle dict (resources through the caches, then the whole Bundle); MappingError if invalid."""
    try:
        entries = [
            {**e, "resource": _resource_model(e["resource"], f"entry.{i}.resource.")}
            for i, e in enumerate(bundle.get("entry", []))
        ]
        Bundle.model_validate({**bundle, "entry": entries})
    except MappingError as exc:
        raise MappingError(f"{what}: {exc}") from None
    except ValidationError as exc:
        raise MappingError(f"{what}: Bundle failed FHIR R4B validation ({_details(exc)})") from None


def clear_cache() -> None:
    """Forget every cached validated resource and fragment (tests)."""
    with _lock:
        _cache.clear()
        _fragments.clear()
