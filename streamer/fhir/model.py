"""The ``fhir.resources`` model of a Bundle dict that is already validated, without validating it again.

``Bundle.model_validate(d)`` costs about twice as much as building and validating ``d`` in the first place
(bench/README.md, "Library API"): every node is validated again although ``streamer.fhir.validation`` has
already proven the verdict. :func:`bundle_model` builds the same model tree directly, node by node:

- each node becomes an instance of the class pydantic would pick (the field's declared ``FhirBase`` type, or
  for ``ResourceType`` fields the class fhir_core dispatches to by ``resourceType``), made as pydantic's
  ``model_construct`` makes it (``__dict__`` holds every field, defaults for absent ones; fields set are the
  keys present, by alias: ``class`` -> ``class_fhir``, ``_status`` -> ``status__ext``, ...);
- a primitive value is kept as it is when its field's validator provably returns it unchanged (plain ``str`` /
  ``int`` / ``bool`` schemas whose Python type the value has exactly); every other value (``date``,
  ``dateTime``, ``instant``, ``time``, ``decimal``, ``url``, ... or an unexpected type) goes through a
  ``TypeAdapter`` of the field's annotation with the models' config -- the validator pydantic runs for that
  field -- so it becomes the same ``date`` / ``datetime`` / ``Decimal`` object (memoised per value).

fhir.resources' model validators (required primitives, choice types, nulls in complex lists, primitive
extensions) only check, they never change a value, so skipping them changes nothing for a valid Bundle.
Anything this module does not expect (an unknown key, a string where a complex element belongs, a class with
private attributes or ``model_post_init``) makes it fall back to ``Bundle.model_validate`` for the whole Bundle.
``tests/unit/library/test_api_model.py`` checks the result node by node (types, values, fields set) and by
``model_dump_json`` against ``Bundle.model_validate`` on pydicom's files, the golden Bundles and the bench
workloads.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from threading import Lock
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir_core.constraints import FHIR_TYPES_MAPS
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from pydantic import BaseModel, TypeAdapter
from pydantic._internal._validators import import_string  # what fhir_core dispatches with
from pydantic_core import PydanticUndefined
from pydantic_core.core_schema import CoreSchema

from streamer.fhir import fast_validation

__all__ = ["Stats", "bundle_model", "model_from_validated", "stats"]

_PLAIN, _CONVERT, _MODEL, _POLY, _EXT = 0, 1, 2, 3, 4
_MAX_MEMO = 65_536  # converted values remembered (cleared whole when full)
_MAX_MEMO_STR = 256
_set = object.__setattr__


@dataclass(slots=True)
class Stats:
    """Counters for tests and benchmarks."""

    built: int = 0  # Bundles built directly
    fallback: int = 0  # Bundles handed to Bundle.model_validate


stats = Stats()


class _Fallback(Exception):
    """Something the direct build does not handle: use ``Bundle.model_validate``."""


class _ClassSpec(typing.NamedTuple):
    fields: dict[str, tuple[int, str, Any]]  # JSON key -> (kind, field name, payload)
    defaults: dict[
        str, Any
    ]  # field name -> default, in field order (all immutable; None if required)
    required: frozenset[str]  # fields without a default (a valid node has each of them)


_specs: dict[type[BaseModel], _ClassSpec | None] = {}
_poly: dict[tuple[type[FhirBase], str], type[FHIRAbstractModel]] = {}
_converters: list[Callable[[Any], Any]] = []  # TypeAdapter(field annotation).validate_python
_converter_ids: dict[Any, tuple[int, type | None]] = {}
_memo: dict[tuple[int, type, Any], Any] = {}  # (converter, input type, input) -> converted value
_lock = Lock()


def _fhir_base(annotation: Any) -> type[FhirBase] | None:
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        return annotation
    for arg in typing.get_args(annotation):
        found = _fhir_base(arg)
        if found is not None:
            return found
    return None


_LEAVES: dict[str, type] = {"str": str, "int": int, "bool": bool}
_STR_VALUE_KEYS = {"type", "pattern", "min_length", "max_length", "metadata", "ref"}
_INT_VALUE_KEYS = {"type", "ge", "le", "gt", "lt", "metadata", "ref"}


def _plain_leaf(schema: CoreSchema) -> type | None:
    """The one Python type whose values the schema returns unchanged (None: it may change values).

    Only nullable / list / union wrappers around ``str``, ``int`` or ``bool`` schemas without any
    function validator or value-changing option (``strip_whitespace``, ``to_lower``, ...) qualify.
    """
    kind = schema["type"]
    raw: dict[str, Any] = dict(schema)
    if kind == "nullable":
        return _plain_leaf(raw["schema"])
    if kind == "list":
        return _plain_leaf(raw["items_schema"]) if "items_schema" in raw else None
    if kind == "union":
        leaves = {_plain_leaf(c if isinstance(c, dict) else c[0]) for c in raw["choices"]}
        return leaves.pop() if len(leaves) == 1 else None
    if kind == "str" and set(raw) <= _STR_VALUE_KEYS:
        return str
    if kind == "int" and set(raw) <= _INT_VALUE_KEYS and not raw.get("strict"):
        return int
    if kind == "bool" and set(raw) <= {"type", "metadata", "ref"}:
        return bool
    return None


def _converter_id(annotation: Any) -> tuple[int, type | None]:
    """Index in ``_converters`` of the validator pydantic runs for a field with ``annotation`` (a
    ``TypeAdapter`` with the models' config), and the plain leaf type of its schema (see ``_plain_leaf``)."""
    with _lock:
        found = _converter_ids.get(annotation)
        if found is None:
            adapter: TypeAdapter[Any] = TypeAdapter(
                annotation, config=FHIRAbstractModel.model_config
            )
            _converters.append(adapter.validate_python)
            found = _converter_ids[annotation] = (
                len(_converters) - 1,
                _plain_leaf(adapter.core_schema),
            )
    return found


def _spec(cls: type[BaseModel]) -> _ClassSpec | None:
    """How to build ``cls`` directly; None when it must go through validation."""
    if cls in _specs:
        return _specs[cls]
    spec: _ClassSpec | None = None
    if (
        not cls.__private_attributes__
        and not cls.__pydantic_post_init__
        and not cls.__pydantic_root_model__
        and cls.model_config.get("extra") != "allow"
    ):
        fields: dict[str, tuple[int, str, Any]] = {}
        defaults: dict[str, Any] = {}
        ok = True
        for name, info in cls.model_fields.items():
            if info.default_factory is not None or info.validation_alias not in (None, info.alias):
                ok = False
                break
            if info.default not in (None, PydanticUndefined) and type(info.default) not in (
                str,
                int,
                bool,
            ):
                ok = False
                break
            defaults[name] = None if info.default is PydanticUndefined else info.default
            key = info.alias or name
            base = _fhir_base(info.annotation)
            if base is None:
                cid, leaf = _converter_id(info.annotation)
                if leaf is not None:
                    fields[key] = (_PLAIN, name, (leaf, cid))
                else:
                    fields[key] = (_CONVERT, name, cid)
            elif issubclass(base, FhirElementOrResourceBase):
                fields[key] = (_POLY, name, base)
            else:
                kind = _EXT if name.endswith("__ext") else _MODEL
                fields[key] = (kind, name, base.get_model_klass())
        if ok:
            required = frozenset(n for n, i in cls.model_fields.items() if i.is_required())
            spec = _ClassSpec(fields, defaults, required)
    _specs[cls] = spec
    return spec


def _poly_class(base: type[FhirBase], node: dict[str, Any]) -> type[FHIRAbstractModel]:
    """The class fhir_core's ``FhirElementOrResourceBase`` validator dispatches ``node`` to."""
    rtype = node.get("resourceType")
    if type(rtype) is not str:
        raise _Fallback
    cls = _poly.get((base, rtype))
    if cls is None:
        try:
            path = FHIR_TYPES_MAPS[base._prefix + rtype + "Type"]
        except (KeyError, AttributeError):
            raise _Fallback from None
        found = import_string(path) if isinstance(path, str) else path
        if not (isinstance(found, type) and issubclass(found, FHIRAbstractModel)):
            raise _Fallback
        cls = _poly[(base, rtype)] = found
    return cls


def _convert(cid: int, value: Any) -> Any:
    """``value`` as converter ``cid`` returns it (memoised for short strings and numbers)."""
    vtype = type(value)
    key: tuple[int, type, Any] | None = None
    if vtype is str:
        if len(value) <= _MAX_MEMO_STR:
            key = (cid, vtype, value)
    elif vtype is int or vtype is bool:
        key = (cid, vtype, value)
    elif vtype is float:
        key = (cid, vtype, repr(value))  # 0.0 == -0.0, but Decimal keeps the sign
    if key is not None:
        hit = _memo.get(key, _memo)
        if hit is not _memo:
            return hit
    try:
        out = _converters[cid](value)
    except Exception:  # noqa: BLE001 - not valid after all: let model_validate give the verdict
        raise _Fallback from None
    if key is not None and type(out) not in (list, dict):  # only immutable results are shared
        if len(_memo) >= _MAX_MEMO:
            with _lock:
                _memo.clear()
        _memo[key] = out
    return out


def _build(cls: type[FHIRAbstractModel], node: dict[str, Any]) -> FHIRAbstractModel:
    spec = _specs[cls] if cls in _specs else _spec(cls)
    if spec is None:
        raise _Fallback
    fields = spec.fields
    values = spec.defaults.copy()
    fields_set = set()
    for key, value in node.items():
        field = fields.get(key)
        if field is None:
            if key == "resourceType" and value == cls.__resource_type__:
                continue
            raise _Fallback
        # one key per field (its alias; a field name that differs is not in ``fields``): no duplicates
        kind, name, payload = field
        fields_set.add(name)
        vtype = type(value)
        if kind == _PLAIN:
            leaf, cid = payload
            if vtype is leaf or value is None:
                values[name] = value
            elif vtype is list and all(type(v) is leaf or v is None for v in value):
                values[name] = list(value)
            else:
                values[name] = _convert(cid, value)
            continue
        if kind == _CONVERT:
            values[name] = None if value is None else _convert(payload, value)
            continue
        if vtype is dict:
            values[name] = _build(_poly_class(payload, value) if kind == _POLY else payload, value)
        elif vtype is list:
            items: list[Any] = []
            for item in value:
                if type(item) is dict:
                    items.append(
                        _build(_poly_class(payload, item) if kind == _POLY else payload, item)
                    )
                elif item is None and kind == _EXT:  # positional placeholder of a primitive list
                    items.append(None)
                else:
                    raise _Fallback
            values[name] = items
        elif value is None:
            values[name] = None
        else:  # fhir_core would parse a string as JSON here: rare, let it
            raise _Fallback
    if spec.required and not spec.required <= fields_set:
        raise _Fallback
    model = cls.__new__(cls)
    _set(model, "__dict__", values)
    _set(model, "__pydantic_fields_set__", fields_set)
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


def model_from_validated(bundle: dict[str, Any]) -> Bundle:
    """``Bundle.model_validate(bundle)`` for a dict that ``streamer.fhir.validation`` accepted, built directly.

    The caller guarantees ``bundle`` was validated and not changed since; the result is the same model tree
    (classes, values, fields set). Input this module does not expect goes through ``Bundle.model_validate``.
    """
    if type(bundle) is dict and bundle.get("resourceType") == "Bundle":
        try:
            model = _build(Bundle, bundle)
        except (_Fallback, RecursionError):
            pass
        else:
            assert isinstance(model, Bundle)
            stats.built += 1
            return model
    stats.fallback += 1
    return Bundle.model_validate(bundle)


def bundle_model(bundle: Any) -> Bundle:
    """``Bundle.model_validate(bundle)`` for any input: validated first (fast path), then built directly.

    Raises exactly what ``Bundle.model_validate`` raises for an invalid Bundle (pydantic's ValidationError).
    """
    fast_validation.validate(bundle)
    return model_from_validated(bundle)
