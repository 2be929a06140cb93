"""Every odd input has a defined fate in the mapping too: odd values are dropped with a warning naming the
tag, never silently, never with the value in the text, and nothing crashes the study (a crash would
dead-letter it whole)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.dicom import cleaning
from streamer.dicom.instance import KEEP_TAGS, check_instance, slim_instance
from streamer.errors import InvalidInstanceError
from streamer.fhir import BundleResult, MappingOptions, build_study_bundle, bundle_json
from tests.unit.fhir._fhir_cases import CASES
from tests.unit.fhir._fhir_helpers import el, inst, one, tag

SECRET = "Zyxwort"  # a distinctive value: no warning or error message may contain it
CORE = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True)
MII = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile="mii")


def _no_secret(result: BundleResult) -> BundleResult:
    assert all(SECRET.lower() not in w.lower() for w in result.warnings), result.warnings
    assert SECRET.lower() not in bundle_json(result).decode().lower()
    return result


def _nested(levels: int, sq: str) -> dict[str, Any]:
    """A code item under ``levels`` levels of the sequence ``sq`` (built without recursion)."""
    innermost: dict[str, Any] = {
        tag("CodeValue"): el("CodeValue", "X1"),
        tag("CodingSchemeDesignator"): el("CodingSchemeDesignator", "DCM"),
    }
    for _ in range(levels - 1):
        innermost = {tag(sq): {"vr": "SQ", "Value": [innermost]}}
    return {"vr": "SQ", "Value": [innermost]}


@pytest.mark.parametrize("options", [CORE, MII])
@pytest.mark.parametrize("sq", ["ProcedureCodeSequence", "RequestAttributesSequence"])
def test_a_sequence_nested_10000_levels_deep_maps_without_recursion_error(
    options: MappingOptions, sq: str
) -> None:
    # two instances with equal deep elements (distinct objects: the mapping compares them), a third
    # nested under a tag slimming drops (never walked)
    study = [inst(n, Modality="CT") for n in (1, 2)]
    for ds in study:
        ds[tag(sq)] = _nested(10_000, sq)
        ds["00400260"] = _nested(10_000, "ProcedureCodeSequence")
    warning = (
        f"{cleaning.tag_label(tag(sq))}: sequence nested deeper than {cleaning.MAX_SEQUENCE_DEPTH} levels; "
        "its items dropped"
    )
    full = build_study_bundle(study, options)
    assert warning in full.warnings
    found: list[str] = []
    slim = [slim_instance(ds, found) for ds in study]
    assert warning in found
    from_slim = build_study_bundle([orjson.loads(orjson.dumps(ds)) for ds in slim], options)
    assert bundle_json(from_slim) == bundle_json(full)
    Bundle.model_validate(full.bundle)


def test_a_pn_value_given_as_a_plain_string_is_dropped_with_a_warning() -> None:
    ds = inst(1, PatientID="P1", ReferringPhysicianName="Smith^Anna")
    ds[tag("PatientName")] = {"vr": "PN", "Value": [f"{SECRET}^John"]}
    result = _no_secret(build_study_bundle([ds], CORE))
    assert "name" not in one(result.bundle, "Patient")
    assert (
        "PatientName (0010,0010): PN value is a plain string, not an object (PS3.18 F.2.2); "
        "value dropped"
    ) in result.warnings


def test_a_five_megabyte_text_value_is_not_published() -> None:
    ds = inst(1, PatientID="P1")
    ds[tag("StudyDescription")] = {"vr": "LO", "Value": [SECRET * 750_000]}
    result = _no_secret(build_study_bundle([ds], CORE))
    assert len(bundle_json(result)) < 10_000
    assert "description" not in one(result.bundle, "ImagingStudy")
    assert (
        "StudyDescription (0008,1030): value longer than VR LO allows (64 characters); value dropped"
    ) in result.warnings


def test_structural_fates_reach_the_bundle_warnings() -> None:
    ds = inst(1, PatientID="P1", SeriesInstanceUID="1.2.03.4")
    ds[tag("PatientSex")] = SECRET
    ds[tag("StudyDescription")] = {"vr": "LO", "Value": SECRET}
    ds[tag("ProcedureCodeSequence")] = {"vr": "SQ", "Value": [SECRET]}
    ds[SECRET] = {"vr": "LO", "Value": [SECRET]}
    result = _no_secret(build_study_bundle([ds], CORE))
    assert set(result.warnings) >= {
        "SeriesInstanceUID (0020,000E): a UID component has a leading zero "
        "(not allowed by PS3.5 9.1); accepted",
        "PatientSex (0010,0040): element is not a JSON object; dropped",
        "StudyDescription (0008,1030): Value is not a list (PS3.18 F.2.2); element dropped",
        "ProcedureCodeSequence (0008,1032): sequence item is not a JSON object; item dropped",
        "1 key is not a DICOM tag; ignored",
    }
    assert "gender" not in one(result.bundle, "Patient")
    assert one(result.bundle, "ImagingStudy")["series"][0]["uid"] == "1.2.03.4"


def test_an_invalid_uid_is_rejected_without_its_value() -> None:
    with pytest.raises(InvalidInstanceError) as info:
        build_study_bundle([inst(1, StudyInstanceUID=f"1.2.{SECRET}")], CORE)
    assert "StudyInstanceUID (0020,000D) is not a valid UID" in str(info.value)
    assert SECRET not in str(info.value)


# ------------------------------------------------------------------------------------------------
# value-level fates: every DA/TM/DT/DS/IS element of every golden input, made unreadable

BAD_VALUES: dict[str, list[object]] = {
    "DA": [SECRET, "20241350"],
    "TM": [SECRET, "256199", "12:61"],
    "DT": [SECRET, "2024131", "20240101250000"],
    "DS": [SECRET, "70kg", "1e999", "1e300", 1e300, 10**30, "NaN"],
    "IS": [SECRET, "70kg", "99999999999", 2**31, 10**30, "1.5"],
    "FD": [SECRET, "70kg", 1e300],
    "UL": [SECRET, -1, 10**30],
    "US": [SECRET, -1, 10**30],
}
# the VR of each kept tag of those VRs (tags of the PS3.6 data dictionary; written out so this test
# does not depend on pydicom's dictionary)
VALUE_VRS: dict[str, str] = {
    tag(k): vr
    for vr, keywords in {
        "DA": "StudyDate SeriesDate AcquisitionDate PatientBirthDate DateOfLastCalibration",
        "TM": "StudyTime SeriesTime AcquisitionTime RadiopharmaceuticalStartTime TimeOfLastCalibration",
        "DT": "AcquisitionDateTime RadiopharmaceuticalStartDateTime",
        "DS": "PatientSize PatientWeight SliceThickness KVP RepetitionTime EchoTime InversionTime "
        "MagneticFieldStrength SpatialResolution RadionuclideTotalDose RadionuclideHalfLife FlipAngle "
        "ExposureTimeInuS XRayTubeCurrentInuA PixelSpacing EnergyWindowLowerLimit EnergyWindowUpperLimit",
        "IS": "ExposureTime XRayTubeCurrent Exposure ExposureInuAs SeriesNumber InstanceNumber",
        "FD": "CTDIvol",
        "UL": "TransducerFrequency PulseRepetitionFrequency",
        "US": "UltrasoundColorDataPresent",
    }.items()
    for k in keywords.split()
}


def _paths(ds: dict[str, Any], path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths (tag, item index, tag, ...) of every element of ``VALUE_VRS`` in ``ds``, nested ones too."""
    for key, elem in ds.items():
        if not isinstance(elem, dict):
            continue
        if key in VALUE_VRS:
            yield (*path, key)
        if elem.get("vr") == "SQ":
            for i, sub in enumerate(elem.get("Value") or []):
                if isinstance(sub, dict):
                    yield from _paths(sub, (*path, key, i))


def _set(ds: dict[str, Any], path: tuple[Any, ...], value: object) -> None:
    node: Any = ds
    for step in path[:-1]:
        node = node[step]["Value"] if isinstance(step, str) else node[step]
    node[path[-1]]["Value"] = [value]


def test_the_value_table_covers_the_kept_tags() -> None:
    assert VALUE_VRS.keys() <= KEEP_TAGS


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_unreadable_value_is_dropped_with_a_warning_never_silently(name: str) -> None:
    make, options = CASES[name]
    base_instances = make()
    base = build_study_bundle(base_instances, options)
    paths = {p for ds in base_instances for p in _paths(ds)}
    assert paths, name
    for path in sorted(paths, key=repr):
        key = path[-1]
        label = f"({key[:4]},{key[4:]})"
        for bad in BAD_VALUES[VALUE_VRS[key]]:
            instances = copy.deepcopy(base_instances)
            for ds in instances:
                if path in set(_paths(ds)):
                    _set(ds, path, bad)
            result = build_study_bundle(instances, options)  # never raises
            Bundle.model_validate(result.bundle)
            new = [w for w in result.warnings if w not in base.warnings]
            if bundle_json(result) != bundle_json(base):
                # the value was read and is gone: a warning says so, naming the tag
                assert any(label in w for w in new), (name, path, bad, new)
            for w in result.warnings:
                assert SECRET not in w and "70kg" not in w, w


def test_slimming_then_mapping_reports_what_mapping_the_full_input_does() -> None:
    """What the stream does (check and slim each record, map the slim instances later) ends in the same
    warnings as mapping the full instances, once the records' warnings are added."""
    study = [inst(n, PatientID="P1", SeriesInstanceUID="1.2.03.4") for n in (1, 2)]
    study[0][tag("StudyDescription")] = {"vr": "LO", "Value": [SECRET * 20]}
    study[1][tag("PatientBirthDate")] = {"vr": "DA", "Value": [SECRET]}
    study[1]["junk"] = 1
    full = _no_secret(build_study_bundle(study, MII))
    records: list[str] = []
    slim = []
    for ds in study:
        check_instance(ds, records)
        slim.append(slim_instance(ds, records))
    mapped = _no_secret(build_study_bundle(slim, MII))
    assert bundle_json(mapped) == bundle_json(full)
    assert set(records) | set(mapped.warnings) == set(full.warnings)
    assert "PatientBirthDate (0010,0030): invalid value dropped" in mapped.warnings
    assert "birthDate" not in one(full.bundle, "Patient")
    assert "description" not in one(full.bundle, "ImagingStudy")
