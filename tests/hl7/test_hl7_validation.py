"""Conformance you can prove: the HL7 FHIR R4B validator (HAPI FHIR 8.8.1, offline) on our Bundles.

Every golden Bundle and every Bundle the library makes from the real files (pydicom's test files and
pydicom-data's, tests/dicom_files.py; defaults; instances + WADO Endpoint; MII profile) must give **0 errors** (severity error or fatal). Warnings and information are allowed
only in kinds listed in ``known_warnings.txt`` (looked at one by one); a new kind fails
``test_every_warning_kind_is_known`` until it is looked at and added. Run with ``-s`` to see the figures.

Known offline limits (warnings, never errors): SNOMED CT, LOINC, RadLex, DICOM (CID 29, SOP classes as
``urn:ietf:rfc:3986``) and MII code systems are unknown to the validator without a terminology server; the MII
profiles and extensions and the German base profiles (fhir.de) it references are not in the jars, so
``meta.profile`` gives "Profile reference '...' has not been checked because it could not be found".
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.dicom_files import PYDICOM_DATA_PREFIX
from tests.hl7.conftest import FOLDERS, MODES, Corpus
from tests.hl7.consistency import consistency_problems
from tests.hl7.validator import (
    HAPI_VERSION,
    KNOWN_WARNINGS,
    Issue,
    Validator,
    describe,
    known_kinds,
    validate_all,
    write_known_kinds,
)

pytestmark = pytest.mark.hl7

MII_PROFILE_BASES = (
    "https://www.medizininformatik-initiative.de/fhir/",
    "http://fhir.de/StructureDefinition/",
)
PROFILE_UNKNOWN = "Validation_VAL_Profile_Unknown"


def _errors(results: Mapping[str, list[Issue]], corpus: Corpus, labels: list[str]) -> str:
    """A readable list of every error of ``labels`` ('' when none)."""
    out = []
    for label in labels:
        errors = [i for i in results[label] if i.is_error]
        if errors:
            out.append(f"{label}\n{describe(corpus.bundles[label], errors)}")
    return "\n".join(out)


def test_the_validator_is_hapi_for_r4b(hl7_validator: Validator) -> None:
    assert hl7_validator.info["hapi"] == HAPI_VERSION
    assert hl7_validator.info["fhirVersion"] == "R4B"


def test_golden_bundles_have_no_errors(
    corpus: Corpus, hl7_results: Mapping[str, list[Issue]]
) -> None:
    labels = corpus.groups["golden"]
    assert len(labels) >= 11
    assert not _errors(hl7_results, corpus, labels)


@pytest.mark.parametrize("mode", list(MODES))
def test_pydicom_bundles_have_no_errors(
    mode: str, corpus: Corpus, hl7_results: Mapping[str, list[Issue]]
) -> None:
    labels = corpus.groups[mode]
    studies = Counter(
        folder for folder in FOLDERS for label in labels if f": {folder} folder, study " in label
    )
    alone = [label.split(": ", 1)[1] for label in labels if " folder, study " not in label]
    extra = [name for name in alone if name.startswith(PYDICOM_DATA_PREFIX)]
    # every convertible file alone, and every study of each folder (pydicom's, pydicom-data's)
    assert len(alone) - len(extra) >= 148 and len(extra) >= 60
    assert studies["pydicom"] >= 31 and studies["pydicom-data"] >= 20
    assert not _errors(hl7_results, corpus, labels)


def test_unknown_profiles_are_only_the_mii_and_german_base_profiles(
    corpus: Corpus, hl7_results: Mapping[str, list[Issue]]
) -> None:
    """The MII profiles are not available offline: exactly that is reported (as a warning), nothing else."""
    for mode, labels in corpus.groups.items():
        unknown = [
            i for label in labels for i in hl7_results[label] if i.message_id == PROFILE_UNKNOWN
        ]
        if mode == "mii":
            assert unknown, (
                "MII Bundles carry meta.profile; the validator should say it cannot check them"
            )
        assert all(i.severity == "warning" for i in unknown), unknown
        urls = {i.message.split("'")[1] for i in unknown}
        assert all(u.startswith(MII_PROFILE_BASES) for u in urls), urls


def test_every_warning_kind_is_known(
    corpus: Corpus, hl7_results: Mapping[str, list[Issue]]
) -> None:
    seen = Counter(i.kind for issues in hl7_results.values() for i in issues if not i.is_error)
    known = known_kinds()
    if os.environ.get("STREAMER_HL7_UPDATE_KNOWN") == "1":
        write_known_kinds(known | set(seen))
        known = known_kinds()
    new = sorted(set(seen) - known)
    assert not new, (
        f"{len(new)} new kind(s) of validator warning. Look at each (which Bundle, why), then add it "
        f"to {KNOWN_WARNINGS} (or run with STREAMER_HL7_UPDATE_KNOWN=1):\n"
        + "\n".join(f"  {k}  (×{seen[k]})" for k in new)
    )


def test_print_figures(corpus: Corpus, hl7_results: Mapping[str, list[Issue]]) -> None:
    """The figures for the README (run with -s)."""
    distinct = {id(v) for v in hl7_results.values()}
    severities = Counter(i.severity for issues in hl7_results.values() for i in issues)
    kinds = {i.kind for issues in hl7_results.values() for i in issues if not i.is_error}
    print(f"\nHL7 validator (HAPI FHIR {HAPI_VERSION}, R4B, offline):")
    for group, labels in corpus.groups.items():
        print(f"  {group}: {len(labels)} Bundles")
    print(
        f"  {len(hl7_results)} Bundles ({len(distinct)} distinct) validated; issues: {dict(severities)}"
    )
    print(f"  {len(kinds)} kinds of warning/information (known_warnings.txt)")
    unused = known_kinds() - kinds
    if unused:
        print("  listed but not seen this run:\n" + "\n".join(f"    {k}" for k in sorted(unused)))
    assert severities["error"] == severities["fatal"] == 0


# --- the validator really checks, and what it does not check ---------------------------------------


def _mutated(corpus: Corpus, change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    bundle = copy.deepcopy(corpus.bundles["golden: ct"])
    change(bundle)
    return bundle


def _entry(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    return next(e for e in bundle["entry"] if e["resource"]["resourceType"] == rtype)


OTHER_UUID = "urn:uuid:11111111-2222-4333-8444-555555555555"
BROKEN: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "unknown gender code": (
        lambda b: _entry(b, "Patient")["resource"].update(gender="x"),
        "Unknown code 'http://hl7.org/fhir/administrative-gender#x'",
    ),
    "missing required status": (
        lambda b: _entry(b, "ImagingStudy")["resource"].pop("status"),
        "ImagingStudy.status: minimum required = 1, but only found 0",
    ),
    "bad dateTime": (
        lambda b: _entry(b, "ImagingStudy")["resource"].update(started="2020-13-45"),
        "Not a valid date/time format: '2020-13-45'",
    ),
    "unknown element": (
        lambda b: _entry(b, "ImagingStudy")["resource"].update(foo="bar"),
        "Unrecognized property 'foo'",
    ),
    "code not in a v2 code system": (  # v2-0203 comes from hapi-fhir-validation-resources-r4
        lambda b: _entry(b, "Patient")["resource"]["identifier"][0].update(
            type={
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "NOPE"}
                ]
            }
        ),
        "v2-0203#NOPE",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_the_validator_finds_errors(case: str, corpus: Corpus, hl7_validator: Validator) -> None:
    """A control: the harness does report errors (so 0 errors above means something)."""
    change, expected = BROKEN[case]
    issues = hl7_validator.validate(_mutated(corpus, change))
    errors = [str(i) for i in issues if i.is_error]
    assert any(expected in e for e in errors), (expected, errors)


NOT_CAUGHT: dict[str, Callable[[dict[str, Any]], object]] = {
    "fullUrl differs from the resource id": lambda b: _entry(b, "Patient").update(
        fullUrl=OTHER_UUID
    ),
    "request.url names another id": lambda b: _entry(b, "Patient")["request"].update(
        url="Patient/another-id"
    ),
    "reference to a urn:uuid not in the Bundle": lambda b: _entry(b, "ImagingStudy")["resource"][
        "subject"
    ].update(reference=OTHER_UUID),
}


@pytest.mark.parametrize("case", list(NOT_CAUGHT))
def test_what_the_validator_misses_our_consistency_check_catches(
    case: str, corpus: Corpus, hl7_validator: Validator
) -> None:
    """HAPI 8.8.1 reports no error for these (checked here, so a version that does is noticed). A reference
    to a fullUrl no entry has (dangling, or left behind by the changed fullUrl) only gets the warning "URN
    reference is not locally contained within the bundle"."""
    bundle = _mutated(corpus, NOT_CAUGHT[case])
    issues = hl7_validator.validate(bundle)
    assert not [i for i in issues if i.is_error]
    assert consistency_problems(bundle)
    local = [i for i in issues if i.message_id == "Bundle_BUNDLE_Not_Local"]
    assert all(i.severity == "warning" for i in local)
    assert bool(local) == (not case.startswith("request.url"))


def test_validate_all_passes_good_and_names_bad_bundles(
    corpus: Corpus, hl7_validator: Validator
) -> None:
    good = [corpus.bundles[label] for label in corpus.groups["golden"]]
    validate_all(good, validator=hl7_validator)
    bad = _mutated(corpus, BROKEN["unknown gender code"][0])
    dangling = _mutated(corpus, NOT_CAUGHT["reference to a urn:uuid not in the Bundle"])
    with pytest.raises(AssertionError) as info:
        validate_all([*good, bad, dangling], validator=hl7_validator)
    text = str(info.value)
    assert "problem(s) in 13 Bundle(s)" in text
    assert "Bundle #11 (id " in text and "Bundle #12 (id " in text and "Bundle #0 " not in text
    assert "error at Bundle.entry[1].resource/*Patient/" in text and ".gender: Unknown code" in text
    assert f"{OTHER_UUID} is no entry's fullUrl" in text
    # the validator only warns about the dangling reference, a kind not in known_warnings.txt
    assert "warning | ImagingStudy.subject | Bundle_BUNDLE_Not_Local" in text
