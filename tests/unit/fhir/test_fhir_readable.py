"""The mapping's fast input path (``readable_instance``: no slimming of pydicom-shaped instances) gives exactly
the Bundle of the slim input, also for odd elements slimming would clean, and leaves the input alone. Its
warnings are those of slimming plus those of mapping the slim input."""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

import pytest

from streamer.dicom import json_model as jm
from streamer.dicom.instance import KEEP_TAGS, check_instance, slim_instance
from streamer.fhir import MappingOptions, build_study_bundle, bundle_json, ids
from streamer.fhir.context import distinct_elements, same_elements
from streamer.fhir.instance import DatasetView, readable_instance
from tests.unit.fhir._fhir_helpers import inst, pydicom_json, tag

OPTS = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True)
MII = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile="mii")


def _same_as_slim(instances: list[dict[str, Any]], options: MappingOptions = OPTS) -> bytes:
    """The Bundle of ``instances``, asserted equal to the Bundle of their slim forms; the warnings of the full
    input are those of checking and slimming it plus those of mapping the slim forms."""
    full = build_study_bundle(instances, options)
    found: list[str] = []
    slims = []
    for d in instances:
        check_instance(d, found)
        slims.append(slim_instance(d, found))
    slim = build_study_bundle(slims, options)
    assert bundle_json(full) == bundle_json(slim)
    assert set(full.warnings) == set(found) | set(slim.warnings)
    return bundle_json(full)


def test_readable_agrees_with_slim_on_kept_tags_and_shares_the_rest() -> None:
    full = pydicom_json("CT_small.dcm")
    full["00081032"] = {
        "vr": "SQ",
        "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}, "00991010": {}}],
    }
    full["00081030"] = {"vr": "LO", "Value": ["x" * 65]}
    readable_warnings: list[str] = []
    slim_warnings: list[str] = []
    readable = readable_instance(full, readable_warnings)
    slim = slim_instance(full, slim_warnings)
    assert readable is not full
    for key in KEEP_TAGS & readable.keys():
        assert readable[key] == slim[key]
    assert readable_warnings == slim_warnings
    assert readable["00081030"] == {"vr": "LO", "Value": [None]}
    assert readable["00081032"]["Value"][0] == {"00080100": {"vr": "SH", "Value": ["X"]}}
    # well-formed elements are the caller's own objects; unmapped tags stay as given
    assert readable["00080060"] is full["00080060"]
    assert readable.keys() == full.keys()


def test_lower_case_keys_and_non_dicts_are_slimmed() -> None:
    ds = {k.lower(): v for k, v in inst(1).items()}
    assert readable_instance(ds) == slim_instance(ds)
    mixed = dict(inst(1))
    mixed["0008103e"] = {"vr": "LO", "Value": ["lower"]}
    assert readable_instance(mixed) == slim_instance(mixed)


def test_slim_input_is_copied_as_it_is() -> None:
    slim = slim_instance(pydicom_json("MR_small.dcm"))
    readable = readable_instance(slim)
    assert readable == slim
    assert readable is not slim


def test_odd_elements_read_as_slimmed() -> None:
    a, b = inst(1), inst(2)
    # bulk data and odd members that differ between the instances, numbers written differently: slimmed, the
    # elements are equal, so the study's value comes from the first instance without a conflict warning
    a[tag("SeriesNumber")] = {"vr": "IS", "Value": [1], "BulkDataURI": "http://x/1"}
    b[tag("SeriesNumber")] = {"vr": "IS", "Value": [1.0], "BulkDataURI": "http://x/2"}
    a[tag("PatientWeight")] = {"vr": "DS", "Value": [80], "vr2": 1}
    b[tag("PatientWeight")] = {"vr": "DS", "Value": [80.0], "vr2": 2}
    # a person name without vr, or in a sequence element: the name is dropped
    a[tag("PatientName")] = {"Value": [{"Alphabetic": "Doe^John"}]}
    b[tag("ReferringPhysicianName")] = {"vr": "SQ", "Value": [{"Alphabetic": "Roe^Jane"}]}
    # not an element: slimming drops it, so the instance has no PatientSex
    a[tag("PatientSex")] = "M"
    b[tag("PatientSex")] = None
    raw = _same_as_slim([a, b])
    assert b'"gender"' not in raw
    assert b"Doe" not in raw and b"Roe" not in raw


@pytest.mark.parametrize("options", [OPTS, MII])
def test_random_odd_studies_give_the_slim_bundle(options: MappingOptions) -> None:
    rng = random.Random(7)
    base = [inst(n, PatientName="Doe^John", PatientSex="F", SeriesNumber=1) for n in range(1, 5)]
    odd: list[Any] = [
        "text",
        None,
        {"vr": "LO"},
        {"vr": None, "Value": ["x"]},
        {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["c"]}, "00991010": {}}]},
        {"Value": [{"Alphabetic": "Odd^Name"}]},
        {"vr": "CS", "Value": ("T",)},
        {"vr": "IS", "Value": [3], "InlineBinary": "AAAA"},
    ]
    tags = sorted(KEEP_TAGS - {"0020000D", "0020000E", "00080018"})
    for _ in range(60):
        study = copy.deepcopy(base)
        for ds in study:
            for key in rng.sample(tags, 4):
                ds[key] = copy.deepcopy(rng.choice(odd))
        _same_as_slim(study, options)


def test_input_is_not_changed() -> None:
    study = [pydicom_json("CT_small.dcm"), pydicom_json("MR_small.dcm")]
    study[1]["0020000D"] = study[0]["0020000D"]
    before = copy.deepcopy(study)
    build_study_bundle(study, MII)
    assert study == before


def test_id_function_sees_the_slim_instance() -> None:
    seen: list[bool] = []

    def id_function(resource_type: str, view: DatasetView, extra: str = "") -> str:
        seen.append("Rows" in view)  # (0028,0010) is not a mapped tag: slimming drops it
        return resource_type + str(view.get("PatientID", "x"))

    full = pydicom_json("CT_small.dcm")
    assert "00280010" in full
    build_study_bundle([full], MappingOptions(id_function=id_function))
    assert seen and not any(seen)


def test_same_and_distinct_elements_compare_slim_forms() -> None:
    plain = {"vr": "LO", "Value": ["a"]}
    odd = {"vr": "LO", "Value": ["a"], "X": 1}
    assert same_elements([plain, dict(plain)])
    assert same_elements([plain, odd])
    assert not same_elements([plain, {"vr": "LO", "Value": ["b"]}])
    assert same_elements([None, "not an element"])
    insts = [{"00100010": e} for e in (odd, plain, "junk", {"vr": "LO", "Value": ["b"]}, odd)]
    assert distinct_elements(insts, "00100010") == [plain, {"vr": "LO", "Value": ["b"]}]
    assert jm.has({"00100040": {"vr": "CS"}}, "00100040")
    assert not jm.has({"00100040": "M"}, "00100040")


def test_uuid5_matches_the_standard_library() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        parts = tuple(
            "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(0, 12)))
            for _ in range(rng.randrange(1, 4))
        )
        assert ids.uuid5(*parts) == str(uuid.uuid5(ids.NAMESPACE, "\x1f".join(parts)))
