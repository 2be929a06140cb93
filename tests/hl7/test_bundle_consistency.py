"""Our Bundle-consistency check (``streamer.fhir.consistency``, through tests/hl7/consistency.py) on every
Bundle the HL7 validator sees, and on the breaches it must catch (which the validator itself does not). Pure
Python: runs without Java.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from streamer.fhir import ids
from tests.hl7.conftest import MODES, Corpus
from tests.hl7.consistency import consistency_problems, expected_full_url

OTHER = "urn:uuid:11111111-2222-4333-8444-555555555555"


def test_every_corpus_bundle_is_consistent(corpus: Corpus) -> None:
    assert set(corpus.groups) == {"golden", *MODES}
    bad = {label: p for label, b in corpus.bundles.items() if (p := consistency_problems(b))}
    assert not bad


def _ct(corpus: Corpus) -> dict[str, Any]:
    return copy.deepcopy(corpus.bundles["golden: ct"])


def _entry(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


BREACHES: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "fullUrl of another id": (
        lambda b: _entry(b, "Device").update(fullUrl=OTHER),
        "does not belong to the resource",
    ),
    "fullUrl not a string": (
        lambda b: _entry(b, "Device").update(fullUrl=["urn:uuid:x"]),
        "does not belong to the resource",
    ),
    "request.url of another id": (
        lambda b: _entry(b, "Device")["request"].update(url="Device/x"),
        "expected PUT 'Device/",
    ),
    "request method POST": (
        lambda b: _entry(b, "Device")["request"].update(method="POST"),
        "request POST",
    ),
    "dangling urn:uuid reference": (
        lambda b: _entry(b, "ImagingStudy")["resource"]["subject"].update(reference=OTHER),
        f"ImagingStudy.subject.reference: {OTHER} is no entry's fullUrl",
    ),
    "relative reference": (
        lambda b: _entry(b, "ImagingStudy")["resource"]["subject"].update(reference="Patient/1"),
        "'Patient/1' is not a urn:uuid reference",
    ),
    "dangling reference in a nested extension": (
        lambda b: _entry(b, "ImagingStudy")["resource"]["series"][0].update(
            extension=[{"url": "http://example.org/x", "valueReference": {"reference": OTHER}}]
        ),
        f"ImagingStudy.series[0].extension[0].valueReference.reference: {OTHER} is no entry's fullUrl",
    ),
    "reference with an escaped character": (
        lambda b: _entry(b, "ImagingStudy")["resource"]["subject"].update(
            reference=_entry(b, "Patient")["fullUrl"] + '"'
        ),
        "is no entry's fullUrl",
    ),
    "duplicate entry": (
        lambda b: b["entry"].append(copy.deepcopy(b["entry"][1])),
        "also on entry[1]",
    ),
    "not a transaction": (lambda b: b.update(type="batch"), "not a transaction Bundle"),
}


@pytest.mark.parametrize("case", list(BREACHES))
def test_each_breach_is_found(case: str, corpus: Corpus) -> None:
    change, expected = BREACHES[case]
    bundle = _ct(corpus)
    assert not consistency_problems(bundle)
    change(bundle)
    problems = consistency_problems(bundle)
    assert any(expected in p for p in problems), problems


def test_full_url_rule_matches_the_product() -> None:
    """A UUID id is its own fullUrl; any other id (from an id_function) gets a UUIDv5 fullUrl."""
    uid = "5f9ecdfd-9100-5103-95dd-33720123de10"
    assert expected_full_url("Patient", uid) == f"urn:uuid:{uid}" == ids.full_url("Patient", uid)
    assert expected_full_url("Patient", "p-1") == ids.full_url("Patient", "p-1")
    assert expected_full_url("Patient", "p-1") != expected_full_url("Device", "p-1")
