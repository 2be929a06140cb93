"""Sequence items whose keys are all kept tags take a shortcut in ``cleaning``; their fates stay those of the
general path (shared when well-formed, cleaned with the same warnings otherwise), and a ``keep`` set that
holds anything but upper-case tags never takes it."""

from __future__ import annotations

from typing import Any

from streamer.dicom import cleaning
from streamer.dicom.instance import KEEP_TAGS, slim_instance
from tests.unit.dicom._dicom_helpers import el, inst, item, tag

SQ = "ProcedureCodeSequence"


def _with_item(sq_item: dict[str, Any]) -> dict[str, Any]:
    return inst(1, ProcedureCodeSequence=[sq_item])


def _items(slim: dict[str, Any]) -> list[Any]:
    items: list[Any] = slim[tag(SQ)]["Value"]
    return items


def test_a_well_formed_item_of_kept_tags_is_shared() -> None:
    sq_item = item(CodeValue="X1", CodingSchemeDesignator="LN", CodeMeaning="Knee")
    ds = _with_item(sq_item)
    warnings: list[str] = []
    slim = slim_instance(ds, warnings)
    assert _items(slim)[0] is sq_item
    assert slim[tag(SQ)] is ds[tag(SQ)]  # nothing changed below it either
    assert warnings == []


def test_an_odd_element_in_an_item_of_kept_tags_is_cleaned_with_its_warning() -> None:
    sq_item = item(CodeValue="X1", CodeMeaning="Knee")
    sq_item[tag("CodeMeaning")] = {"vr": "LO", "Value": ["x" * 65]}
    before = {k: dict(v) for k, v in sq_item.items()}
    ds = _with_item(sq_item)
    warnings: list[str] = []
    slim = slim_instance(ds, warnings)
    assert _items(slim) == [
        {tag("CodeValue"): el("CodeValue", "X1"), tag("CodeMeaning"): {"vr": "LO", "Value": [None]}}
    ]
    assert warnings == [
        "CodeMeaning (0008,0104): value longer than VR LO allows (64 characters); value dropped"
    ]
    assert sq_item == before  # the caller's item is not changed


def test_an_item_with_a_tag_that_is_not_kept_is_slimmed() -> None:
    sq_item = item(CodeValue="X1", Rows=512)
    assert tag("Rows") not in KEEP_TAGS
    slim = slim_instance(_with_item(sq_item))
    assert _items(slim) == [item(CodeValue="X1")]


def test_an_item_with_lower_case_or_odd_keys_is_rekeyed_and_counted() -> None:
    sq_item = {tag("CodeValue").lower(): el("CodeValue", "X1"), "x": el("CodeMeaning", "Knee")}
    warnings: list[str] = []
    slim = slim_instance(_with_item(sq_item), warnings)
    assert _items(slim) == [item(CodeValue="X1")]
    assert warnings == ["1 key is not a DICOM tag; ignored"]


def test_a_keep_set_with_names_that_are_not_tags_takes_the_general_path() -> None:
    keep = frozenset({tag(SQ), tag("CodeValue"), "name"})
    ds = {tag(SQ): {"vr": "SQ", "Value": [{tag("CodeValue"): el("CodeValue", "X1"), "name": 1}]}}
    warnings: list[str] = []
    out = cleaning.normalize(ds, keep, warnings)
    assert out == {tag(SQ): {"vr": "SQ", "Value": [{tag("CodeValue"): el("CodeValue", "X1")}]}}
    assert warnings == ["1 key is not a DICOM tag; ignored"]


def test_a_keep_set_with_a_lower_case_tag_takes_the_general_path() -> None:
    # keep holds upper-case tags: a lower-case one matches no (upper-cased) key of an item
    keep = frozenset({tag(SQ), "0040a124"})
    ds = {tag(SQ): {"vr": "SQ", "Value": [{"0040a124": {"vr": "UI", "Value": ["1.2"]}}]}}
    assert cleaning.normalize(ds, keep) == {tag(SQ): {"vr": "SQ", "Value": [{}]}}


def test_the_check_of_a_keep_set_is_by_content() -> None:
    assert cleaning._upper_tags_only(KEEP_TAGS)
    assert cleaning._upper_tags_only(frozenset({"0008103E"}))
    assert not cleaning._upper_tags_only(frozenset({"0008103e"}))
    assert not cleaning._upper_tags_only(frozenset({"0008103E", "name"}))
    assert not cleaning._upper_tags_only(frozenset())


def test_normalize_element_cleans_items_of_a_sequence_element_as_slimming_does() -> None:
    sq_item = item(CodeValue="X1")
    elem = {"vr": "SQ", "Value": [sq_item]}
    assert cleaning.normalize_element(elem, KEEP_TAGS) is elem
    odd = {"vr": "SQ", "Value": [{**sq_item, tag("CodeMeaning"): "text"}]}
    assert cleaning.normalize_element(odd, KEEP_TAGS) == {"vr": "SQ", "Value": [sq_item]}
