"""Exact fast path for ``Bundle.model_validate``: learned node shapes plus per-value primitive checks.

Why this is exact (read against fhir_core 1.1.x / fhir.resources 8.x R4B; ``tests/unit/fhir/
test_fast_validation.py`` audits every assumption below over all 684 R4B model classes and checks the verdict
against ``Bundle.model_validate`` differentially):

pydantic validates a FHIR model from a dict node by node, and a node's verdict is

    valid(C, d) = local_ok(C, L(d))  and  every primitive field value v of d passes V_field(v)
                  and every complex child dict is valid(C_child, child)

where ``C`` is the node's model class and ``L(d)`` its *local shape*: the ordered keys, the Python type of
each value, for lists the set of item types, the ``resourceType`` value, and for a primitive-extension child
(``_field``) whether its ``extension`` list is non-empty. ``local_ok`` covers everything fhir_core checks
that is not a primitive value: ``extra="forbid"`` keys, pydantic-required fields, None vs value,
``FHIRAbstractModel.__init__``'s ``resourceType`` comparison, ``reject_null_complex_elements`` (None items
of complex lists), ``_validate_required_primitive_elements`` (value None/missing and the ``_field``
extension list), ``_validate_one_of_many`` (which choice keys are non-None) and FHIRPrimitiveExtension's
before-validator (``id``/``extension``/``fhir_comments`` None or not). None of them reads a primitive value
or a list length (the R4B models carry no list-length constraint and no other validator).

- ``C_child`` is fixed by the field annotation (a ``FhirBase`` type), except for ``ResourceType`` fields
  (``Bundle.entry.resource``, ``contained``, ...) where fhir_core dispatches on the child's
  ``resourceType``; that mapping is learned from the validated model.
- ``V_field`` is a ``pydantic.TypeAdapter`` of the field's full annotation with the models' own config,
  i.e. the same core validator pydantic runs for that field (FHIR primitives are ``Annotated`` types whose
  constraints live in the annotation; no R4B field carries extra ``Field`` constraints).

``local_ok(C, L)`` is learned: after ``Bundle.model_validate`` accepts a Bundle, every (class, local shape)
pair in it is recorded as known good. A later Bundle whose nodes all have known pairs is valid iff all its
primitive values pass their ``V_field`` (memoised per distinct value). Anything else -- an unknown pair, a
failing value, a key that is not a field alias, a string or number where a complex element is expected, a
non-JSON Python type -- sends the Bundle to full ``Bundle.model_validate``, which gives the verdict. So the
fast path can only say "valid"; every rejection comes from fhir.resources itself.

Caches are bounded by ``limits`` (two generations, an LRU approximation; ``cache_sizes()`` tells how full
they are) and only touched with GIL-atomic dict/set operations plus a lock around the generation switch,
so concurrent callers are safe.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import Any, NamedTuple

from fhir.resources.R4B.bundle import Bundle
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import BaseModel, TypeAdapter

_MAX_CACHED_STR = 1024  # longer strings are checked every time (bounds the cache's memory)
_MISSING: Any = object()

_PRIM, _COMPLEX, _EXT, _POLY = 0, 1, 2, 3

# (kind, field name, payload): payload is the validator index (primitive) or the child class (complex)
_FieldSpec = tuple[int, str, Any]


@dataclass(slots=True)
class Stats:
    """Counters for tests and benchmarks."""

    fast: int = 0  # Bundles accepted by the fast path
    full: int = 0  # Bundles sent to Bundle.model_validate
    learned: int = 0  # valid Bundles whose shapes were recorded


stats = Stats()


@dataclass(slots=True)
class Limits:
    """Cache bounds: learned node shapes and remembered primitive values (two generations of half each)."""

    shapes: int = 65_536
    # Most values of a Bundle are unique to its study (ids, fullUrls, UIDs) and never hit again; the ones
    # that repeat (codes, systems, displays) are a few thousand. 32,768 keeps those at no measured CPU cost
    # against 131,072 (bench scenario a) and holds ≈ 6 MiB instead of ≈ 26 MiB (bench/soak.py).
    values: int = 32_768


limits = Limits()


class CacheSizes(NamedTuple):
    """Entries held now, both generations counted; never above ``limits``."""

    shapes: int
    values: int


_lock = Lock()
_field_maps: dict[type[BaseModel], dict[str, _FieldSpec]] = {}
_list_adapters: list[Callable[[Any], Any]] = []  # TypeAdapter(list[field annotation])
_adapter_ids: dict[Any, int] = {}
# Two generations each (an LRU approximation without per-hit bookkeeping): when the young one is full it
# becomes the old one and the previous old one is dropped; a hit in the old one is copied to the young one.
_Shape = tuple[type[BaseModel], tuple[tuple[Any, Any], ...]]
_known: set[_Shape] = set()
_known_old: set[_Shape] = set()
_poly: dict[Any, type[BaseModel]] = {}
# the item types of a complex list (the set a shape records), by (some item is a dict, some is None): any
# other item type is rejected before; one prebuilt set each instead of a new one per list
_ITEM_TYPES: dict[tuple[bool, bool], frozenset[type]] = {
    (d, n): frozenset([dict] * d + [type(None)] * n) for d in (False, True) for n in (False, True)
}
_values: dict[Any, bool] = {}  # keys of values that passed their validator
_values_old: dict[Any, bool] = {}


def _fhir_base(annotation: Any) -> type[FhirBase] | None:
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        return annotation
    for arg in typing.get_args(annotation):
        found = _fhir_base(arg)
        if found is not None:
            return found
    return None


def _validator_id(annotation: Any) -> int:
    try:
        key: Any = annotation
        hash(key)
    except TypeError:  # pragma: no cover - every R4B annotation is hashable
        key = ("id", id(annotation))
    with _lock:
        vid = _adapter_ids.get(key)
        if vid is None:
            config = FHIRAbstractModel.model_config
            _list_adapters.append(TypeAdapter(list[annotation], config=config).validate_python)
            vid = _adapter_ids[key] = len(_list_adapters) - 1
    return vid


def field_map(cls: type[BaseModel]) -> dict[str, _FieldSpec]:
    """JSON key (the field alias) -> how the fast path treats that field of ``cls``."""
    fmap = _field_maps.get(cls)
    if fmap is not None:
        return fmap
    fmap = {}
    for name, info in cls.model_fields.items():
        key = info.alias or name
        base = _fhir_base(info.annotation)
        if base is None:
            fmap[key] = (_PRIM, name, _validator_id(info.annotation))
        elif issubclass(base, FhirElementOrResourceBase):
            fmap[key] = (_POLY, name, base)
        else:
            kind = _EXT if name.endswith("__ext") else _COMPLEX
            fmap[key] = (kind, name, base.get_model_klass())
    _field_maps[cls] = fmap
    return fmap


def _poly_class(
    target: Any, node: dict[str, Any], node_model: Any, learning: bool
) -> type[BaseModel] | None:
    """The model class fhir_core dispatches ``node`` to by its ``resourceType`` (None: unknown/odd).

    While learning, the class is taken from the validated model ``node_model``.
    """
    rtype = node.get("resourceType", _MISSING)
    if not (rtype is _MISSING or type(rtype) is str):
        return None
    if learning and isinstance(node_model, FHIRAbstractModel):
        _poly[(target, rtype)] = type(node_model)
    return _poly.get((target, rtype))


def _walk(
    cls: type[BaseModel], node: dict[str, Any], leaves: list[tuple[int, Any]], model: Any
) -> bool:
    """Collect the primitive leaves of ``node``; True iff every (class, local shape) pair is known good.

    With ``model`` (the validated instance of ``node``) the pairs are recorded instead of looked up.
    """
    fmap = _field_maps.get(cls) or field_map(cls)
    shape: list[tuple[Any, Any]] = []
    add = shape.append
    for key, value in node.items():
        spec = fmap.get(key)
        vtype = type(value)
        if spec is None:
            if key == "resourceType" and (vtype is str or value is None):
                add((key, value))
                continue
            return False
        kind, name, target = spec
        if kind == _PRIM:
            add((key, vtype))
            if (vtype is str or vtype is int) and (target, vtype, value) in _values:
                continue  # a value already proven valid for this field type
            leaves.append((target, value))
            continue
        sub = model.__dict__.get(name) if model is not None else None
        if vtype is dict:
            child_cls = (
                _poly_class(target, value, sub, model is not None) if kind == _POLY else target
            )
            if child_cls is None:
                return False
            if model is not None and type(sub) is not child_cls:
                return False
            if not _walk(child_cls, value, leaves, sub):
                return False
            if kind == _EXT:
                ext = value.get("extension")
                add((key, type(ext) is list and len(ext) > 0))
            else:
                add((key, dict))
        elif vtype is list:
            dicts = nones = False
            for i, item in enumerate(value):
                if type(item) is not dict:
                    if item is None:
                        nones = True
                        continue
                    return False
                dicts = True
                item_model = sub[i] if sub is not None else None
                child_cls = (
                    _poly_class(target, item, item_model, model is not None)
                    if kind == _POLY
                    else target
                )
                if child_cls is None:
                    return False
                if model is not None and type(item_model) is not child_cls:
                    return False
                if not _walk(child_cls, item, leaves, item_model):
                    return False
            add((key, _ITEM_TYPES[dicts, nones]))
        elif value is None:
            add((key, None))
        else:  # a string or number where a complex element is expected (fhir_core parses strings as JSON)
            return False
    pair = (cls, tuple(shape))
    if model is not None:
        _remember_shape(pair)
        return True
    if pair in _known:
        return True
    if pair in _known_old:
        _remember_shape(pair)
        return True
    return False


def _remember_shape(pair: _Shape) -> None:
    global _known, _known_old
    half = limits.shapes // 2
    if len(_known) >= half:
        with _lock:
            if len(_known) >= half:
                _known_old, _known = _known, set()
    _known.add(pair)


def _remember_values(keys: list[Any]) -> None:
    """Remember values (by key) that passed their validator."""
    global _values, _values_old
    half = limits.values // 2
    if len(_values) + len(keys) > half:
        with _lock:
            if len(_values) + len(keys) > half:
                _values_old, _values = _values, {}
    _values.update(dict.fromkeys(keys[:half], True))


def _value_key(vid: int, value: Any) -> Any:
    """Cache key of a primitive value for validator ``vid`` (None: not cached)."""
    vtype = type(value)
    if vtype is str:
        return (vid, vtype, value) if len(value) <= _MAX_CACHED_STR else None
    if vtype is int or vtype is bool or value is None:
        return (vid, vtype, value)
    if vtype is float:
        return (vid, vtype, repr(value))  # 0.0 == -0.0 and nan != nan: key by spelling
    if vtype is list and all(type(v) is str and len(v) <= _MAX_CACHED_STR for v in value):
        return (vid, vtype, tuple(value))  # primitive lists: meta.profile, HumanName.given, ...
    return None


def _values_ok(leaves: list[tuple[int, Any]]) -> bool:
    """True iff every (validator, value) passes; values not seen before are checked in one call per
    validator (``list[T]`` validates each item exactly as ``T``), and only passing values are remembered."""
    pending: dict[int, list[Any]] = {}
    # new, or promoted from the old generation; a value met again in the same Bundle (a fullUrl and the
    # references to it) is checked once
    new_keys: dict[Any, bool] = {}
    young, old = _values, _values_old
    for vid, value in leaves:
        if type(value) is str and len(value) <= _MAX_CACHED_STR:
            key: Any = (vid, str, value)
        else:
            key = _value_key(vid, value)
        if key is not None:
            if key in young or key in new_keys:
                continue
            new_keys[key] = True
            if key in old:
                continue
        values = pending.get(vid)
        if values is None:
            pending[vid] = [value]
        else:
            values.append(value)
    for vid, values in pending.items():
        try:
            _list_adapters[vid](values)
        except Exception:  # noqa: BLE001 - ValidationError or anything odd: full validation decides
            return False
    if new_keys:
        _remember_values(list(new_keys))
    return True


def fast_accepts(bundle: Any) -> bool:
    """True iff the fast path proves ``Bundle.model_validate(bundle)`` accepts (False: undecided)."""
    if type(bundle) is not dict:
        return False
    leaves: list[tuple[int, Any]] = []
    try:
        if not _walk(Bundle, bundle, leaves, None):
            return False
    except RecursionError:  # absurdly deep input: let fhir.resources decide
        return False
    return _values_ok(leaves)


def learn(bundle: Any, model: Bundle) -> None:
    """Record the node shapes of ``bundle``, which ``Bundle.model_validate`` turned into ``model``."""
    if type(bundle) is not dict:
        return
    try:
        if _walk(Bundle, bundle, [], model):
            stats.learned += 1
    except RecursionError:  # pragma: no cover - fhir.resources itself recurses less deeply
        pass


def validate(bundle: Any) -> None:
    """Raise exactly when ``Bundle.model_validate(bundle)`` raises (the exception is that one)."""
    if fast_accepts(bundle):
        stats.fast += 1
        return
    stats.full += 1
    model = Bundle.model_validate(bundle)
    learn(bundle, model)


def cache_sizes() -> CacheSizes:
    """How many learned shapes and remembered values the caches hold now (tests and benchmarks)."""
    return CacheSizes(len(_known) + len(_known_old), len(_values) + len(_values_old))


def clear() -> None:
    """Forget every learned shape and checked value."""
    with _lock:
        _known.clear()
        _known_old.clear()
        _poly.clear()
        _values.clear()
        _values_old.clear()
        stats.fast = stats.full = stats.learned = 0
