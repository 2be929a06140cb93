"""DICOM JSON accessors (streamer.dicom.json_model)."""

from __future__ import annotations

from streamer.dicom import cleaning
from streamer.dicom import json_model as jm


def test_normalize_uppercases_and_drops_bulk_data() -> None:
    ds = {
        "0020000d": {"vr": "UI", "Value": ["1.2"]},
        "7fe00010": {"vr": "OW", "InlineBinary": "AAAA"},
        "00081032": {
            "vr": "SQ",
            "Value": [
                {
                    "00080100": {"vr": "SH", "Value": ["X"]},
                    "00091010": {"vr": "OB", "BulkDataURI": "http://x"},
                }
            ],
        },
        "not-a-tag": {"vr": "LO", "Value": ["x"]},
        "00100010": "garbage",
    }
    out = cleaning.normalize(ds)
    assert out["0020000D"] == {"vr": "UI", "Value": ["1.2"]}
    assert out["7FE00010"] == {"vr": "OW"}
    assert out["00081032"]["Value"][0]["00091010"] == {"vr": "OB"}
    assert "not-a-tag" not in out and "00100010" not in out


def test_normalize_with_keep_filters_nested_levels() -> None:
    ds = {
        "00081032": {
            "vr": "SQ",
            "Value": [
                {"00080100": {"vr": "SH", "Value": ["X"]}, "00191010": {"vr": "LO", "Value": ["y"]}}
            ],
        },
        "00191010": {"vr": "LO", "Value": ["y"]},
    }
    out = cleaning.normalize(ds, frozenset({"00081032", "00080100"}))
    assert out == {"00081032": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}}]}}


def test_first_and_strings_skip_empty_and_strip() -> None:
    ds = {
        "00181020": {"vr": "LO", "Value": [None, " V1 ", "", "V2\x00"]},
        "00101030": {"vr": "DS", "Value": [80]},
    }
    assert jm.first(ds, "00181020") == "V1"
    assert jm.strings(ds, "00181020") == ["V1", "V2"]
    assert jm.first(ds, "00101030") == "80"
    assert jm.first(ds, "00100020") is None
    assert jm.strings({"00181020": {"vr": "LO"}}, "00181020") == []
    assert jm.strings({"00181020": {"vr": "LO", "Value": "notalist"}}, "00181020") == []


def test_items_only_objects() -> None:
    ds = {
        "00081032": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}}, None, "x"]}
    }
    assert jm.items(ds, "00081032") == [{"00080100": {"vr": "SH", "Value": ["X"]}}]


def test_person_names_standard_and_bare_string() -> None:
    ds = {
        "00100010": {
            "vr": "PN",
            "Value": [
                {
                    "Alphabetic": "Yamada^Tarou",
                    "Ideographic": "山田^太郎",
                    "Phonetic": "やまだ^たろう",
                },
                "Doe^John=ドウ^ジョン",
                {"Alphabetic": "^^^"},
                None,
            ],
        }
    }
    assert jm.person_names(ds, "00100010") == [
        {"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"},
        {"Alphabetic": "Doe^John", "Ideographic": "ドウ^ジョン"},
    ]
