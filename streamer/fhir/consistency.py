"""Bundle consistency: what FHIR validation (``fhir.resources`` and the HL7 validator, checked with HAPI 8.8.1)
does not catch in a transaction Bundle, checked on every finished Bundle (``bundle._finish``).

A Bundle whose ``urn:uuid`` fullUrl does not belong to its resource, whose ``request.url`` names another id, or
whose references point to a ``urn:uuid`` no entry has, is valid FHIR; a server would store resources under
other ids than intended or fail the transaction. The rules for our Bundles (``ids.py``, ``bundle.py``):

* the Bundle is a ``transaction``; every entry has a resource with ``resourceType`` and a FHIR ``id``;
* fullUrl is ``ids.full_url(type, id)`` (``urn:uuid:<id>`` for a UUID id); fullUrls are unique in the Bundle;
* ``request`` is ``PUT <Type>/<id>``; no two entries put the same ``<Type>/<id>``;
* every ``reference`` is the fullUrl of an entry (our Bundles never reference outside themselves).

Cheap by design (the mapping's speed matters): one pass over the entries, and the references are found in the
orjson bytes of the Bundle (a JSON object key ``"reference"`` cannot occur inside a string, where quotes are
escaped): ``bytes.find`` jumps from one ``"reference":`` to the next, a few times cheaper than a regex over the
Bundle and far cheaper than walking its dicts in Python. Only a Bundle with a problem is walked again, to name
where each reference is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from typing import Any, NamedTuple, TypeGuard

import orjson

from streamer.errors import MappingError
from streamer.fhir import ids

_REFERENCE = re.compile(rb'"reference":"((?:[^"\\]|\\.)*)"')
_KEY = b'"reference":'


class Problem(NamedTuple):
    """One breach. ``where`` (entry index, resource type, path) and ``kind`` hold no values from the input, so
    they go into the MappingError; ``text`` is the whole message with the values involved (ids from an
    ``id_function``, reference values), for tests and tools."""

    where: str
    kind: str
    text: str

    def __str__(self) -> str:
        return self.text


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, value) of every ``reference`` string below ``node`` (the slow walk, only for a faulty Bundle)."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield f"{path}.reference", v
            else:
                yield from _references(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _references(v, f"{path}[{i}]")


def _references_resolve(bundle: Mapping[str, Any], full_urls: Collection[str]) -> bool:
    """True when every ``reference`` string in ``bundle`` is one of ``full_urls``."""
    try:
        data = orjson.dumps(bundle)
    except TypeError:  # not JSON-serialisable: walk it
        return all(ref in full_urls for _, ref in _references(bundle, "Bundle"))
    # each "reference": key, then its string up to the next quote (bytes.find runs in C; a Bundle has a few
    # references per resource, so the Python loop is short)
    find = data.find
    at = find(_KEY)
    while at >= 0:
        start = at + len(_KEY) + 1
        end = find(b'"', start)
        value = data[start:end]
        if (
            data[start - 1] != 34 or b"\\" in value
        ):  # not a string, or an escape in it: the regex decides
            return all(m.decode() in full_urls for m in _REFERENCE.findall(data))
        if value.decode() not in full_urls:
            return False
        at = find(_KEY, end)
    return True


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    # the class test first: isinstance against the Mapping ABC is slow
    return value.__class__ is dict or isinstance(value, Mapping)


def problems(bundle: Mapping[str, Any]) -> list[Problem]:
    """Every breach of the rules above (empty for a consistent Bundle)."""
    found: list[Problem] = []
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        found.append(Problem("Bundle", "not a transaction Bundle", "not a transaction Bundle"))
    entries = bundle.get("entry") or []
    full_urls: dict[str, int] = {}
    targets: dict[str, int] = {}
    for n, entry in enumerate(entries):
        resource = entry.get("resource") if _is_mapping(entry) else None
        if not _is_mapping(resource):
            found.append(Problem(f"entry[{n}]", "no resource", f"entry[{n}]: no resource"))
            continue
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str) or not ids.is_fhir_id(rid):
            kind = "resource without resourceType or a valid id"
            found.append(Problem(f"entry[{n}]", kind, f"entry[{n}]: {kind}: {rtype}/{rid}"))
            continue
        target = f"{rtype}/{rid}"
        url = entry.get("fullUrl")
        want = ids.full_url(rtype, rid)
        request = entry.get("request")
        method, req_url = (
            (request.get("method"), request.get("url")) if _is_mapping(request) else (None, None)
        )
        if (
            url != want  # a fullUrl that is not a string differs from want
            or url in full_urls
            or target in targets
            or method != "PUT"
            or req_url != target
        ):
            # a breach: where and label are formatted only now (every Bundle is checked)
            where, label = f"entry[{n}] ({rtype})", f"entry[{n}] ({rtype}/{rid})"
            if url != want:
                kind = "fullUrl does not belong to the resource"
                text = f"{label}: fullUrl {url!r} does not belong to the resource ({want})"
                found.append(Problem(where, kind, text))
            if isinstance(url, str) and url in full_urls:
                kind = f"fullUrl also on entry[{full_urls[url]}]"
                text = f"{label}: fullUrl {url} also on entry[{full_urls[url]}]"
                found.append(Problem(where, kind, text))
            if method != "PUT" or req_url != target:
                kind = "request is not PUT <Type>/<id>"
                text = f"{label}: request {method} {req_url!r}, expected PUT '{target}'"
                found.append(Problem(where, kind, text))
            if target in targets:
                kind = f"<Type>/<id> also put by entry[{targets[target]}]"
                text = f"{label}: {target} also put by entry[{targets[target]}]"
                found.append(Problem(where, kind, text))
        if isinstance(url, str):
            full_urls.setdefault(url, n)
        targets.setdefault(target, n)
    if _references_resolve(bundle, full_urls.keys()):
        return found
    for n, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(resource, Mapping):
            continue
        rtype = str(resource.get("resourceType", "?"))
        label = f"entry[{n}] ({rtype}/{resource.get('id')})"
        for path, ref in _references(resource, rtype):
            where = f"entry[{n}] {path}"
            if not ref.startswith("urn:uuid:"):
                text = f"{label} {path}: {ref!r} is not a urn:uuid reference"
                found.append(Problem(where, "not a urn:uuid reference", text))
            elif ref not in full_urls:
                text = f"{label} {path}: {ref} is no entry's fullUrl"
                found.append(Problem(where, "urn:uuid reference is no entry's fullUrl", text))
    return found


def check_bundle(bundle: Mapping[str, Any], what: str) -> None:
    """MappingError (a dead letter on the stream path, as a validation failure) when ``bundle`` breaks a rule;
    the message names where and what, never a value."""
    found = problems(bundle)
    if found:
        listed = "; ".join(f"{p.where}: {p.kind}" for p in found[:5])
        more = f"; and {len(found) - 5} more" if len(found) > 5 else ""
        raise MappingError(f"{what}: Bundle is not consistent ({listed}{more})")
