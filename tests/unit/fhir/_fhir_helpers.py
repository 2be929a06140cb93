"""Helpers for the mapping tests: reading resources out of Bundles.

The DICOM JSON builders (``inst``, ``item``, ``pydicom_json`` ...) live with the DICOM tests and are
re-exported here, so a mapping test imports all it needs from one place.
"""

from __future__ import annotations

from typing import Any

from tests.unit.dicom._dicom_helpers import (
    SERIES,
    STUDY,
    el,
    inst,
    item,
    pydicom_dir,
    pydicom_json,
    tag,
    tag_number,
)

__all__ = [
    "SERIES",
    "STUDY",
    "by_url",
    "el",
    "inst",
    "item",
    "one",
    "pydicom_dir",
    "pydicom_json",
    "references",
    "resources",
    "tag",
    "tag_number",
]


def resources(bundle: dict[str, Any], rtype: str) -> list[dict[str, Any]]:
    """All resources of a type in a Bundle dict."""
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == rtype]


def one(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    """The single resource of a type."""
    found = resources(bundle, rtype)
    assert len(found) == 1, (rtype, len(found))
    return found[0]


def by_url(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """fullUrl -> resource."""
    return {e["fullUrl"]: e["resource"] for e in bundle["entry"]}


def references(node: Any) -> list[str]:
    """Every Reference.reference string anywhere in ``node``."""
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(references(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(references(v))
    return out
