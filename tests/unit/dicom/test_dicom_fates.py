"""Every odd input at the DICOM level has a defined fate: rejected (``check_instance``), or dropped with a
warning naming the tag (``slim_instance``), never silently and never with the offending value in the text."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streamer.dicom import cleaning
from streamer.dicom.instance import KEEP_TAGS, check_instance, is_slim, slim_instance
from streamer.errors import InvalidInstanceError
from tests.unit.dicom._dicom_helpers import el, inst, item, tag

SECRET = "Zyxwort"  # a distinctive value: no warning or error message may contain it

# ------------------------------------------------------------------------------------------------
# UIDs (PS3.5 9.1)

UID_ATTRIBUTES = [
    ("StudyInstanceUID", "(0020,000D)"),
    ("SeriesInstanceUID", "(0020,000E)"),
    ("SOPInstanceUID", "(0008,0018)"),
]


@pytest.mark.parametrize(("keyword", "number"), UID_ATTRIBUTES)
@pytest.mark.parametrize(
    ("uid", "reason"),
    [
        ("1.2.840.Zyxwort", "a component has a character other than 0-9"),
        ("1.2.8\x0040.1", "a component has a character other than 0-9"),
        ("1.2.8 40.1", "a component has a character other than 0-9"),
        ("1.2-840.1", "a component has a character other than 0-9"),
        ("1.2..840", "a component is empty"),
        (".1.2.840", "a component is empty"),
        ("1.2.840.", "a component is empty"),
        ("1." + "2" * 63, "longer than 64 characters"),
        ("\x00 ", "it is empty"),
    ],
)
def test_a_uid_breaking_the_grammar_is_rejected_naming_the_attribute(
    keyword: str, number: str, uid: str, reason: str
) -> None:
    ds = inst(1, **{keyword: uid})
    with pytest.raises(InvalidInstanceError) as info:
        check_instance(ds, [])
    message = str(info.value)
    assert f"{keyword} {number} is not a valid UID: " in message
    assert reason in message
    assert uid.strip(" \x00") not in message if uid.strip(" \x00") else True
    assert SECRET not in message


@pytest.mark.parametrize("padded", ["1.2.840.10008.1\x00", "1.2.840.10008.1 ", " 1.2.840.10008.1"])
def test_padding_around_a_uid_is_removed_silently(padded: str) -> None:
    warnings: list[str] = []
    key = check_instance(inst(1, SOPInstanceUID=padded), warnings)
    assert key.sop_uid == "1.2.840.10008.1"
    assert warnings == []


def test_a_leading_zero_is_accepted_with_a_warning_naming_the_attribute() -> None:
    warnings: list[str] = []
    key = check_instance(inst(1, SeriesInstanceUID="1.2.03.4"), warnings)
    assert key.series_uid == "1.2.03.4"
    assert warnings == [
        "SeriesInstanceUID (0020,000E): a UID component has a leading zero "
        "(not allowed by PS3.5 9.1); accepted"
    ]
    # without a list the UID is accepted the same way
    assert check_instance(inst(1, SeriesInstanceUID="1.2.03.4")).series_uid == "1.2.03.4"


@pytest.mark.parametrize("uid", ["0", "1.0.2", "2.25.0", "1.2.840.10008.5.1.4.1.1.2"])
def test_zero_components_are_valid(uid: str) -> None:
    warnings: list[str] = []
    assert check_instance(inst(1, SOPInstanceUID=uid), warnings).sop_uid == uid
    assert warnings == []


# ------------------------------------------------------------------------------------------------
# structure (PS3.18 F.2)


def _slim(ds: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    slim = slim_instance(ds, warnings)
    assert all(SECRET.lower() not in w.lower() for w in warnings), warnings
    return slim, warnings


def test_a_well_formed_instance_gives_no_warning() -> None:
    ds = inst(
        1,
        PatientName="Doe^John",
        StudyDescription="Head",
        PixelSpacing=("0.5", "0.5"),
        ProcedureCodeSequence=[item(CodeValue="X1", CodingSchemeDesignator="L")],
    )
    slim, warnings = _slim(ds)
    assert warnings == []
    assert slim[tag("StudyDescription")] is ds[tag("StudyDescription")]  # shared, not copied


def test_a_pn_value_given_as_a_plain_string_is_dropped_with_a_warning() -> None:
    ds = inst(1)
    ds[tag("PatientName")] = {"vr": "PN", "Value": [f"{SECRET}^John", {"Alphabetic": "Doe^Jane"}]}
    slim, warnings = _slim(ds)
    assert slim[tag("PatientName")]["Value"] == [None, {"Alphabetic": "Doe^Jane"}]
    assert warnings == [
        "PatientName (0010,0010): PN value is a plain string, not an object (PS3.18 F.2.2); "
        "value dropped"
    ]


@pytest.mark.parametrize("value", [SECRET, {"Alphabetic": SECRET}, 7, None, True])
def test_a_value_member_that_is_not_a_list_drops_the_element(value: object) -> None:
    ds = inst(1)
    ds[tag("StudyDescription")] = {"vr": "LO", "Value": value}
    slim, warnings = _slim(ds)
    if value is None:  # ``"Value": null``: no value, as if absent
        assert slim[tag("StudyDescription")] == {"vr": "LO"}
        assert warnings == []
    else:
        assert tag("StudyDescription") not in slim
        assert warnings == [
            "StudyDescription (0008,1030): Value is not a list (PS3.18 F.2.2); element dropped"
        ]


def test_a_sequence_item_that_is_not_an_object_is_dropped_with_a_warning() -> None:
    good = item(CodeValue="X1", CodingSchemeDesignator="L")
    ds = inst(1)
    ds[tag("ProcedureCodeSequence")] = {"vr": "SQ", "Value": [SECRET, good, None, [good]]}
    slim, warnings = _slim(ds)
    assert slim[tag("ProcedureCodeSequence")]["Value"] == [good]
    assert warnings == [
        "ProcedureCodeSequence (0008,1032): sequence item is not a JSON object; item dropped"
    ]


@pytest.mark.parametrize("elem", [SECRET, 42, None, [SECRET], True])
def test_an_element_that_is_not_an_object_is_dropped_with_a_warning(elem: object) -> None:
    ds = inst(1)
    ds[tag("PatientSex")] = elem
    slim, warnings = _slim(ds)
    assert tag("PatientSex") not in slim
    assert warnings == ["PatientSex (0010,0040): element is not a JSON object; dropped"]


@pytest.mark.parametrize(
    "elem", [{"Value": [SECRET]}, {"vr": None, "Value": ["M"]}, {"vr": "XX", "Value": ["M"]}, {}]
)
def test_an_element_without_a_valid_vr_is_dropped_with_a_warning(elem: dict[str, Any]) -> None:
    ds = inst(1)
    ds[tag("PatientSex")] = elem
    slim, warnings = _slim(ds)
    assert tag("PatientSex") not in slim
    assert warnings == ["PatientSex (0010,0040): element has no valid VR (PS3.18 F.2.2); dropped"]


# one kept tag of each VR the mappers read as text or number, and the PS3.5 maximum (DA and TM: the
# ACR-NEMA forms are read; UC/UR/UT: the cap)
LENGTHS = [
    ("Modality", "CS", 16),
    ("StudyDate", "DA", 10),
    ("PatientWeight", "DS", 16),
    ("AcquisitionDateTime", "DT", 26),
    ("SeriesNumber", "IS", 12),
    ("StudyDescription", "LO", 64),
    ("AccessionNumber", "SH", 16),
    ("DocumentTitle", "ST", 1024),
    ("StudyTime", "TM", 16),
    ("LongCodeValue", "UC", cleaning.UNLIMITED_TEXT_CAP),
    ("DeviceUID", "UI", 64),
    ("URNCodeValue", "UR", cleaning.UNLIMITED_TEXT_CAP),
    ("UniqueDeviceIdentifier", "UT", cleaning.UNLIMITED_TEXT_CAP),
]


@pytest.mark.parametrize(("keyword", "vr", "limit"), LENGTHS)
def test_a_value_longer_than_its_vr_allows_is_dropped_with_a_warning(
    keyword: str, vr: str, limit: int
) -> None:
    assert cleaning.MAX_LENGTH[vr] == limit
    fits = "7" * limit
    too_long = "7" * (limit + 1)
    ds = inst(1)
    ds[tag(keyword)] = {"vr": vr, "Value": [fits, too_long, fits + " \x00"]}
    slim, warnings = _slim(ds)
    # the other values keep their positions; padding does not count
    assert slim[tag(keyword)]["Value"] == [fits, None, fits + " \x00"]
    number = tag(keyword)
    assert warnings == [
        f"{keyword} ({number[:4]},{number[4:]}): value longer than VR {vr} allows "
        f"({limit} characters); value dropped"
    ]


@pytest.mark.parametrize(
    ("vr", "limit"), [("AE", 16), ("AS", 4), ("LT", 10240), ("SH", 16), ("UI", 64)]
)
def test_the_limits_hold_for_every_tag_when_all_are_kept(vr: str, limit: int) -> None:
    warnings: list[str] = []
    out = cleaning.normalize({"00091010": {"vr": vr, "Value": ["x" * (limit + 1)]}}, None, warnings)
    assert out == {"00091010": {"vr": vr, "Value": [None]}}
    assert warnings == [
        f"(0009,1010): value longer than VR {vr} allows ({limit} characters); value dropped"
    ]


def test_a_backslash_joined_string_counts_part_by_part() -> None:
    ds = inst(1)
    ds[tag("ImageType")] = {"vr": "CS", "Value": ["ORIGINAL\\PRIMARY\\AXIAL"]}
    slim, warnings = _slim(ds)
    assert slim[tag("ImageType")] is ds[tag("ImageType")]
    assert warnings == []


@pytest.mark.parametrize("value", [SECRET * 750_000, (SECRET + "\\") * 650_000])
def test_a_five_megabyte_text_value_does_not_reach_the_slim_instance(value: str) -> None:
    ds = inst(1)
    ds[tag("StudyDescription")] = {"vr": "LO", "Value": [value]}
    slim, warnings = _slim(ds)
    assert len(orjson.dumps(slim)) < 2_000
    assert warnings == [
        "StudyDescription (0008,1030): value longer than VR LO allows (64 characters); value dropped"
    ]


def test_a_pn_component_group_longer_than_64_characters_is_dropped() -> None:
    ds = inst(1)
    ds[tag("OperatorsName")] = {
        "vr": "PN",
        "Value": [{"Alphabetic": "Op^Olga"}, {"Alphabetic": "A^B", "Ideographic": SECRET * 10}],
    }
    slim, warnings = _slim(ds)
    assert slim[tag("OperatorsName")]["Value"] == [{"Alphabetic": "Op^Olga"}, None]
    assert warnings == [
        "OperatorsName (0008,1070): PN Ideographic group longer than 64 characters; value dropped"
    ]


@pytest.mark.parametrize(
    ("keyword", "vr", "value", "problem"),
    [
        ("StudyDescription", "LO", {"x": SECRET}, "an object is not a value of VR LO"),
        ("Modality", "CS", [SECRET], "a list is not a value of VR CS"),
        ("SeriesNumber", "IS", True, "a boolean is not a value of VR IS"),
        ("PatientName", "PN", 42, "PN value is a number, not an object"),
        ("PatientWeight", "DS", float("nan"), "a number that is not finite"),
        ("PatientWeight", "DS", float("inf"), "a number that is not finite"),
        ("SeriesNumber", "IS", 2**31, "a number outside the range of VR IS"),
        ("SeriesNumber", "IS", -(2**31), "a number outside the range of VR IS"),
        ("InstanceNumber", "IS", 10**400, "a number outside the range of VR IS"),
        ("PatientWeight", "DS", 10**400, "value longer than VR DS allows (16 characters)"),
        ("StudyTime", "TM", 10**40, "value longer than VR TM allows (16 characters)"),
        ("UltrasoundColorDataPresent", "US", -1, "a number outside the range of VR US"),
        ("UltrasoundColorDataPresent", "US", SECRET, "value longer than VR US allows"),
        ("CTDIvol", "FD", 10**400, "a number outside the range of VR FD"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_dropped_with_a_warning(
    keyword: str, vr: str, value: object, problem: str
) -> None:
    ds = inst(1)
    ds[tag(keyword)] = {"vr": vr, "Value": [value]}
    slim, warnings = _slim(ds)
    assert slim[tag(keyword)] == {"vr": vr, "Value": [None]}
    assert len(warnings) == 1 and warnings[0].startswith(f"{keyword} (")
    assert problem in warnings[0] and warnings[0].endswith("; value dropped")


@pytest.mark.parametrize(
    ("keyword", "vr", "value"),
    [
        ("StudyTime", "TM", 101500),  # a number in a string VR is read as its text (seed bug B7)
        ("CTDIvol", "FD", "7.5"),  # a numeric string in a binary VR is read as a number
        ("SeriesNumber", "IS", 2**31 - 1),
        ("SeriesNumber", "IS", -(2**31) + 1),
        (
            "PatientWeight",
            "DS",
            1e300,
        ),  # a finite number; values.parse_ds decides whether it is read
        ("SeriesNumber", "IS", 3.0),
    ],
)
def test_tolerated_values_are_kept_without_a_warning(keyword: str, vr: str, value: object) -> None:
    ds = inst(1)
    ds[tag(keyword)] = {"vr": vr, "Value": [value]}
    slim, warnings = _slim(ds)
    assert slim[tag(keyword)] == {"vr": vr, "Value": [value]}
    assert warnings == []


@pytest.mark.parametrize("value", [[], [None], [None, "CT"]])
def test_no_value_and_null_values_are_kept_without_a_warning(value: list[Any]) -> None:
    ds = inst(1)
    ds[tag("Modality")] = {"vr": "CS", "Value": value}
    slim, warnings = _slim(ds)
    assert slim[tag("Modality")] == {"vr": "CS", "Value": value}
    assert warnings == []


def test_bulk_data_is_dropped_without_a_warning() -> None:
    ds = inst(1)
    ds[tag("StudyDescription")] = {"vr": "LO", "Value": ["Head"], "BulkDataURI": "http://x/1"}
    ds[tag("DocumentTitle")] = {"vr": "ST", "InlineBinary": "AAAA"}
    ds["7FE00010"] = {"vr": "OW", "InlineBinary": SECRET}
    slim, warnings = _slim(ds)
    assert slim[tag("StudyDescription")] == {"vr": "LO", "Value": ["Head"]}
    assert slim[tag("DocumentTitle")] == {"vr": "ST"}
    assert "7FE00010" not in slim
    assert warnings == []


def test_a_value_in_a_bulk_data_vr_is_dropped_with_a_warning() -> None:
    ds = inst(1)
    ds[tag("StudyDescription")] = {"vr": "UN", "Value": [SECRET]}
    slim, warnings = _slim(ds)
    assert slim[tag("StudyDescription")] == {"vr": "UN", "Value": [None]}
    assert warnings == [
        "StudyDescription (0008,1030): a string is not a value of VR UN; value dropped"
    ]


def test_keys_that_are_not_tags_are_counted_once_per_instance() -> None:
    ds = inst(1, ProcedureCodeSequence=[item(CodeValue="X1")])
    ds[SECRET] = {"vr": "LO", "Value": ["x"]}
    ds["0010,0010"] = {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]}
    ds["PatientName"] = {"vr": "PN", "Value": [{"Alphabetic": "A^B"}]}
    ds[tag("ProcedureCodeSequence")]["Value"][0][f"{SECRET}-2"] = {"vr": "LO", "Value": ["y"]}
    ds["0009101g"] = {"vr": "LO", "Value": ["z"]}
    slim, warnings = _slim(ds)
    assert warnings == ["5 keys are not DICOM tags; ignored"]
    assert set(slim) <= KEEP_TAGS
    assert slim[tag("ProcedureCodeSequence")]["Value"] == [item(CodeValue="X1")]
    one: dict[str, Any] = {**inst(1), "x": 1}
    assert _slim(one)[1] == ["1 key is not a DICOM tag; ignored"]


def test_lower_case_tags_are_tags() -> None:
    ds = {k.lower(): v for k, v in inst(1, StudyDescription="Head").items()}
    ds["00091010"] = {"vr": "LO", "Value": ["private"]}
    slim, warnings = _slim(ds)
    assert slim[tag("StudyDescription")] == {"vr": "LO", "Value": ["Head"]}
    assert warnings == []


def test_odd_values_of_tags_slimming_drops_give_no_warning() -> None:
    ds = inst(1)
    ds["00091010"] = {"vr": "LO", "Value": ["x" * 100_000]}  # private, not kept
    ds[tag("Rows")] = SECRET
    ds["00321060"] = {"vr": "LO", "Value": SECRET}
    slim, warnings = _slim(ds)
    assert warnings == []
    assert set(slim) <= KEEP_TAGS


def _nested(levels: int, sq: str = "ProcedureCodeSequence") -> dict[str, Any]:
    """An instance whose sequence nests ``levels`` deep (built without recursion)."""
    innermost: dict[str, Any] = {tag("CodeValue"): el("CodeValue", "X1")}
    for _ in range(levels - 1):
        innermost = {tag(sq): {"vr": "SQ", "Value": [innermost]}}
    ds = inst(1)
    ds[tag(sq)] = {"vr": "SQ", "Value": [innermost]}
    return ds


def _depth(ds: dict[str, Any], sq: str = "ProcedureCodeSequence") -> int:
    depth = 0
    items = ds.get(tag(sq), {}).get("Value") or []
    while items:
        depth += 1
        items = items[0].get(tag(sq), {}).get("Value") or []
    return depth


def test_sequences_nested_up_to_the_bound_are_kept() -> None:
    ds = _nested(cleaning.MAX_SEQUENCE_DEPTH)
    slim, warnings = _slim(ds)
    assert warnings == []
    assert _depth(slim) == cleaning.MAX_SEQUENCE_DEPTH


@pytest.mark.parametrize("levels", [cleaning.MAX_SEQUENCE_DEPTH + 1, 10_000])
def test_items_nested_deeper_than_the_bound_are_dropped_with_a_warning(levels: int) -> None:
    ds = _nested(levels)
    assert not is_slim(ds)  # no RecursionError either
    slim, warnings = _slim(ds)
    assert _depth(slim) == cleaning.MAX_SEQUENCE_DEPTH
    assert warnings == [
        "ProcedureCodeSequence (0008,1032): sequence nested deeper than "
        f"{cleaning.MAX_SEQUENCE_DEPTH} levels; its items dropped"
    ]
    assert is_slim(slim)
    orjson.dumps(slim)  # within orjson's nesting limit too


def test_each_fate_is_the_same_without_a_warnings_list() -> None:
    ds = inst(1, PatientName=f"{SECRET}^A")
    ds[tag("PatientName")] = {"vr": "PN", "Value": [SECRET]}
    ds[tag("StudyDescription")] = {"vr": "LO", "Value": [SECRET * 20]}
    ds["junk"] = 1
    assert slim_instance(ds) == _slim(ds)[0]


def test_of_two_spellings_of_a_tag_the_upper_case_one_wins_as_in_check_instance() -> None:
    for order in (1, -1):
        pairs = [
            ("0020000d", {"vr": "UI", "Value": ["1.2.3"]}),
            ("0020000D", {"vr": "UI", "Value": ["1.2.4"]}),
        ][::order]
        ds = {k: v for k, v in inst(1).items() if k != "0020000D"}
        ds.update(pairs)
        assert list(ds)[-2:] == [k for k, _ in pairs]
        assert slim_instance(ds)["0020000D"]["Value"] == ["1.2.4"]
        assert check_instance(slim_instance(ds)) == check_instance(ds)
