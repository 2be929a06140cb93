"""Our own Bundle-consistency check: what the HL7 validator does not catch (checked with HAPI 8.8.1).

The validator accepts a transaction Bundle whose ``urn:uuid`` fullUrl does not belong to the resource, whose
``request.url`` names another id, or whose references point to a ``urn:uuid`` that no entry has. A FHIR server
would then store resources under other ids than intended or fail the transaction. The rules for our Bundles
(``streamer/fhir/ids.py``, ``streamer/fhir/bundle.py``):

* every entry has a resource with ``resourceType`` and a FHIR ``id``;
* fullUrl is ``urn:uuid:<id>`` when the id is a UUID, else ``urn:uuid:<uuid5("fullUrl", type, id)>``; fullUrls are
  unique in the Bundle;
* ``request`` is ``PUT <Type>/<id>`` (a transaction Bundle);
* every ``reference`` that starts with ``urn:uuid:`` is the fullUrl of an entry of the Bundle, and every
  reference is such a ``urn:uuid`` (our Bundles never reference outside themselves);
* no two entries put the same ``<Type>/<id>``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from streamer.fhir import ids

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def expected_full_url(resource_type: str, rid: str) -> str:
    """The fullUrl of ``resource_type/rid``, computed here independently of ``ids.full_url``."""
    if _UUID.fullmatch(rid):
        return f"urn:uuid:{rid}"
    return f"urn:uuid:{ids.uuid5('fullUrl', resource_type, rid)}"


def _references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, value) of every ``reference`` string below ``node``."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield f"{path}.reference", v
            else:
                yield from _references(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _references(v, f"{path}[{i}]")


def consistency_problems(bundle: Mapping[str, Any]) -> list[str]:
    """Every breach of the rules above, one message each (resource, path, what is wrong)."""
    problems: list[str] = []
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        problems.append("not a transaction Bundle")
    entries = bundle.get("entry") or []
    full_urls: dict[str, int] = {}
    targets: dict[str, int] = {}
    for n, entry in enumerate(entries):
        where = f"entry[{n}]"
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            problems.append(f"{where}: no resource")
            continue
        rtype, rid = resource.get("resourceType"), resource.get("id")
        if not isinstance(rtype, str) or not isinstance(rid, str) or not ids.is_fhir_id(rid):
            problems.append(f"{where}: resource without resourceType or a valid id: {rtype}/{rid}")
            continue
        where = f"{where} ({rtype}/{rid})"
        url = entry.get("fullUrl")
        want = expected_full_url(rtype, rid)
        if url != want:
            problems.append(f"{where}: fullUrl {url!r} does not belong to the resource ({want})")
        if isinstance(url, str):
            if url in full_urls:
                problems.append(f"{where}: fullUrl {url} also on entry[{full_urls[url]}]")
            full_urls.setdefault(url, n)
        request = entry.get("request") or {}
        if request.get("method") != "PUT" or request.get("url") != f"{rtype}/{rid}":
            problems.append(
                f"{where}: request {request.get('method')} {request.get('url')!r}, "
                f"expected PUT '{rtype}/{rid}'"
            )
        target = f"{rtype}/{rid}"
        if target in targets:
            problems.append(f"{where}: {target} also put by entry[{targets[target]}]")
        targets.setdefault(target, n)
    for n, entry in enumerate(entries):
        resource = entry.get("resource")
        if not isinstance(resource, Mapping):
            continue
        label = f"entry[{n}] ({resource.get('resourceType')}/{resource.get('id')})"
        for path, ref in _references(resource, resource.get("resourceType", "?")):
            if not ref.startswith("urn:uuid:"):
                problems.append(f"{label} {path}: {ref!r} is not a urn:uuid reference")
            elif ref not in full_urls:
                problems.append(f"{label} {path}: {ref} is no entry's fullUrl")
    return problems
