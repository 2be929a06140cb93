"""Property-based: random and broken DICOM JSON values per VR never crash the mapping.

Every run ends in a valid Bundle (validated by build_study_bundle itself, re-checked here) or a typed
StreamerError; nothing else escapes.
"""

from __future__ import annotations

from typing import Any

import orjson
from fhir.resources.R4B.bundle import Bundle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.datadict import dictionary_VR

from streamer.aggregate import InMemoryStudyStore, PartitionState
from streamer.dicom.instance import KEEP_TAGS, slim_instance
from streamer.errors import InvalidMessageError, StreamerError
from streamer.fhir import (
    MappingOptions,
    build_bundle,
    build_study_bundle,
    bundle_json,
)
from streamer.messages import Instance, decode
from tests.unit.fhir._fhir_helpers import references, tag, tag_number

KEYWORDS = [
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "PatientWeight",
    "PatientSize",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "OtherPatientIDs",
    "PatientMotherBirthName",
    "StudyDate",
    "StudyTime",
    "SeriesDate",
    "SeriesTime",
    "TimezoneOffsetFromUTC",
    "AccessionNumber",
    "Modality",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyDescription",
    "SeriesDescription",
    "StudyID",
    "SeriesNumber",
    "InstanceNumber",
    "SOPClassUID",
    "BodyPartExamined",
    "Laterality",
    "ImageLaterality",
    "Manufacturer",
    "ManufacturerModelName",
    "StationName",
    "DeviceSerialNumber",
    "DeviceUID",
    "SoftwareVersions",
    "InstitutionName",
    "InstitutionalDepartmentName",
    "SpatialResolution",
    "DateOfLastCalibration",
    "TimeOfLastCalibration",
    "ImageType",
    "ContentLabel",
    "DocumentTitle",
    "ReasonForTheRequestedProcedure",
    "KVP",
    "ExposureTime",
    "CTDIvol",
    "ScanningSequence",
    "SequenceVariant",
    "MagneticFieldStrength",
    "EchoTime",
    "FlipAngle",
    "ViewPosition",
    "Units",
    "SeriesType",
    "PixelSpacing",
    "SliceThickness",
    "ContrastBolusAgent",
    "RadiopharmaceuticalStartTime",
    "AcquisitionTime",
    "AcquisitionDateTime",
    "BurnedInAnnotation",
    "TransducerType",
]
SEQUENCES = [
    "ProcedureCodeSequence",
    "IssuerOfAccessionNumberSequence",
    "ReasonForRequestedProcedureCodeSequence",
    "RequestAttributesSequence",
    "ReferencedRequestSequence",
    "OtherPatientIDsSequence",
    "IssuerOfPatientIDQualifiersSequence",
    "UDISequence",
    "ConceptNameCodeSequence",
    "CodingSchemeIdentificationSequence",
    "RadiopharmaceuticalInformationSequence",
    "RadionuclideCodeSequence",
]
ITEM_KEYWORDS = [
    "CodeValue",
    "CodingSchemeDesignator",
    "CodeMeaning",
    "CodingSchemeVersion",
    "LongCodeValue",
    "URNCodeValue",
    "CodingSchemeUID",
    "CodingSchemeURL",
    "UniversalEntityID",
    "UniversalEntityIDType",
    "LocalNamespaceEntityID",
    "PatientID",
    "IssuerOfPatientID",
    "TypeOfPatientID",
    "UniqueDeviceIdentifier",
    "ReasonForTheRequestedProcedure",
    "Radiopharmaceutical",
    "RadionuclideTotalDose",
    "RadionuclideHalfLife",
    "RadiopharmaceuticalStartTime",
]


def _vr(keyword: str) -> str:
    return dictionary_VR(tag_number(keyword))


ODD_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=24)
DIGITS = st.from_regex(r"[0-9:.+\- ]{0,16}", fullmatch=True)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
PN_GROUP = st.from_regex(r"[A-Za-z\u00e9\u5c71^= ]{0,20}", fullmatch=True)
PN = st.one_of(
    st.fixed_dictionaries(
        {}, optional={"Alphabetic": PN_GROUP, "Ideographic": PN_GROUP, "Phonetic": PN_GROUP}
    ),
    PN_GROUP,
    st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=2),
)
SCALAR = st.one_of(
    st.none(), ODD_TEXT, DIGITS, NUMBERS, st.dictionaries(ODD_TEXT, ODD_TEXT, max_size=1)
)


def _values(vr: str) -> st.SearchStrategy[Any]:
    if vr == "PN":
        one = st.one_of(PN, SCALAR)
    elif vr in {"DA", "TM", "DT", "IS", "DS", "SH", "UI", "CS"}:
        one = st.one_of(DIGITS, SCALAR)
    else:
        one = SCALAR
    return st.lists(one, max_size=3)


def _element(vr: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda v: {"vr": vr, "Value": v}, values),
        st.just({"vr": vr}),
        st.builds(lambda v: {"vr": vr, "Value": v}, SCALAR),  # Value not a list
        st.just({"vr": vr, "InlineBinary": "AAAA"}),
        SCALAR,  # not an element at all
    )


@st.composite
def _item(draw: st.DrawFn) -> dict[str, Any]:
    chosen = draw(st.lists(st.sampled_from(ITEM_KEYWORDS), max_size=6, unique=True))
    out: dict[str, Any] = {}
    for kw in chosen:
        key = tag(kw)
        out[key.lower() if draw(st.booleans()) else key] = draw(_element(_vr(kw), _values(_vr(kw))))
    if draw(st.booleans()):
        nested = draw(
            st.sampled_from(["RadionuclideCodeSequence", "ReasonForRequestedProcedureCodeSequence"])
        )
        out[tag(nested)] = {
            "vr": "SQ",
            "Value": [{tag("CodeValue"): {"vr": "SH", "Value": [draw(ODD_TEXT)]}}],
        }
    return out


@st.composite
def instances(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=4))
    out = []
    for i in range(count):
        ds: dict[str, Any] = {
            "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
            "0020000E": {"vr": "UI", "Value": [draw(st.sampled_from(["1.2.3.1", "1.2.3.2"]))]},
            "00080018": {"vr": "UI", "Value": [f"1.2.3.1.{draw(st.integers(0, 3)) if i else 0}"]},
        }
        for kw in draw(st.lists(st.sampled_from(KEYWORDS), max_size=25, unique=True)):
            vr = _vr(kw)
            key = tag(kw)
            ds[key.lower() if draw(st.booleans()) else key] = draw(_element(vr, _values(vr)))
        for kw in draw(st.lists(st.sampled_from(SEQUENCES), max_size=4, unique=True)):
            ds[tag(kw)] = draw(
                st.one_of(
                    st.builds(
                        lambda v: {"vr": "SQ", "Value": v},
                        st.lists(st.one_of(_item(), SCALAR), max_size=3),
                    ),
                    st.just({"vr": "SQ"}),
                    st.just({"vr": "SQ", "Value": "x"}),
                )
            )
        out.append(ds)
    return out


OPTIONS = st.builds(
    MappingOptions,
    dicom_timezone=st.sampled_from(
        [None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
    ),
    add_instances=st.booleans(),
    add_vital_signs=st.booleans(),
    profile=st.sampled_from(["core", "mii"]),
    wado_base_url=st.sampled_from([None, "https://pacs.example/dicomweb"]),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(instances(), OPTIONS)
def test_random_values_give_a_valid_bundle_or_a_typed_error(
    data: list[dict[str, Any]], options: MappingOptions
) -> None:
    try:
        result = build_study_bundle(data, options)
    except StreamerError:
        return
    raw = bundle_json(result)
    Bundle.model_validate_json(raw)
    assert orjson.loads(raw) == result.bundle
    assert result.study_uid == "1.2.3"
    assert result.instance_count == result.bundle["entry"][0]["resource"]["numberOfInstances"]
    # slim input gives the same Bundle
    again = build_study_bundle([slim_instance(d) for d in data], options)
    assert bundle_json(again) == raw
    assert all(set(slim_instance(d)) <= KEEP_TAGS for d in data)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(instances(), OPTIONS, st.randoms(use_true_random=False))
def test_output_does_not_depend_on_arrival_order(
    data: list[dict[str, Any]], options: MappingOptions, rnd: Any
) -> None:
    sops = [orjson.dumps(d["00080018"]) for d in data]
    if len(set(sops)) != len(sops):
        return  # with duplicates the last one wins: order matters by definition
    try:
        first = build_study_bundle(data, options)
    except StreamerError:
        return
    shuffled = data[:]
    rnd.shuffle(shuffled)
    assert bundle_json(build_study_bundle(shuffled, options)) == bundle_json(first)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(instances(), min_size=1, max_size=3), OPTIONS)
def test_several_studies_in_one_bundle(
    groups: list[list[dict[str, Any]]], options: MappingOptions
) -> None:
    data = []
    for n, group in enumerate(groups):
        for d in group:
            d = dict(d)
            d["0020000D"] = {"vr": "UI", "Value": [f"1.2.{n}"]}
            d["0020000E"] = {
                "vr": "UI",
                "Value": [f"1.2.{n}.{d['0020000E']['Value'][0].rsplit('.', 1)[-1]}"],
            }
            data.append(d)
    try:
        result = build_bundle(data, options)
    except StreamerError:
        return
    bundle = result.bundle
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls))
    assert set(references(bundle)) <= set(urls)
    studies = [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    ]
    assert [s["identifier"][0]["value"] for s in studies] == [
        f"urn:oid:1.2.{n}" for n in range(len(groups))
    ]
    Bundle.model_validate_json(bundle_json(result))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(instances(), st.booleans())
def test_random_records_decode_or_raise_a_dead_letter_reason(
    data: list[dict[str, Any]], drop_uid: bool
) -> None:
    # What the stream does with a record: decode it (the compiled build checks declared types at run
    # time, so a value of an unexpected type must still end as a dead-letter reason, not a crash).
    doc = dict(data[0])
    if drop_uid:
        doc.pop("00080018")
    try:
        message = decode(b"1.2.3", orjson.dumps(doc))
    except InvalidMessageError:
        return
    assert not drop_uid  # no SOPInstanceUID: never accepted
    assert isinstance(message, Instance)
    assert message.study_uid == "1.2.3"
    assert set(orjson.loads(message.slim)) <= KEEP_TAGS


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(instances(), OPTIONS)
def test_the_stream_path_gives_the_library_bundle(
    data: list[dict[str, Any]], options: MappingOptions
) -> None:
    # What the processor does with a study's records: decode each (slimmed bytes), add it to the
    # partition state (held by SOPInstanceUID; an instance of another patient is refused), then
    # parse the held bytes back and build with cleaned=True (no second cleaning). The compiled
    # build trusts the declared types on that path, so it must give the Bundle (or the typed
    # error) that the library's call gives for the same accepted instances.
    state = PartitionState(
        partition=0, store=InMemoryStudyStore(), timeout_ms=60_000, retention_ms=86_400_000
    )
    accepted: dict[str, dict[str, Any]] = {}
    for offset, doc in enumerate(data):
        try:
            message = decode(b"1.2.3", orjson.dumps(doc))
            assert isinstance(message, Instance)
            state.add_instance(message, offset, 1_700_000_000_000 + offset)
        except InvalidMessageError:
            continue  # dead-lettered
        accepted[message.key.sop_uid] = doc
    if not accepted:
        return
    held = [orjson.loads(raw) for raw in state.instances("1.2.3")]
    assert len(held) == len(accepted)
    outcomes: list[bytes | type[StreamerError]] = []
    for instances_, cleaned in ((held, True), (list(accepted.values()), False)):
        try:
            outcomes.append(bundle_json(build_study_bundle(instances_, options, cleaned=cleaned)))
        except StreamerError as exc:
            outcomes.append(type(exc))
    stream, library = outcomes
    assert stream == library
    if isinstance(stream, bytes):
        Bundle.model_validate_json(stream)
