"""The tag table (``streamer.dicom.tags``) agrees with the DICOM data dictionary, entry by entry."""

from __future__ import annotations

import re

import pytest
from pydicom.datadict import keyword_for_tag, tag_for_keyword

from streamer.dicom import tags as t

# Every public string of the module is a table entry: keyword -> "GGGGEEEE".
TABLE = {
    name: value
    for name, value in vars(t).items()
    if not name.startswith("_") and isinstance(value, str)
}


def test_the_table_is_not_empty() -> None:
    assert len(TABLE) > 100
    assert TABLE["StudyInstanceUID"] == "0020000D"


@pytest.mark.parametrize(("keyword", "tag"), sorted(TABLE.items()))
def test_entry_matches_the_data_dictionary(keyword: str, tag: str) -> None:
    assert re.fullmatch("[0-9A-F]{8}", tag), "tags are 8 upper-case hex digits, as DICOM JSON keys"
    assert keyword_for_tag(int(tag, 16)) == keyword
    assert tag_for_keyword(keyword) == int(tag, 16)


def test_no_tag_is_listed_twice() -> None:
    assert len(set(TABLE.values())) == len(TABLE)


def test_pulse_repetition_frequency_is_0018_6032() -> None:
    # (0018,6028) is Reference Pixel Physical Value X, a US region calibration value nothing reads.
    assert t.PulseRepetitionFrequency == "00186032"
    assert "00186028" not in TABLE.values()
