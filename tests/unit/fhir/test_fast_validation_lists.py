"""The item types of a complex list are part of a node's learned shape: a list that gains a None item (or
loses its dicts) is a new shape, which ``Bundle.model_validate`` decides."""

from __future__ import annotations

import copy
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from streamer.fhir import MappingOptions, build_study_bundle, fast_validation
from streamer.fhir.validation import clear_cache
from tests.unit.library._api_helpers import make_instance


def _bundle() -> dict[str, Any]:
    bundle = build_study_bundle([make_instance()], MappingOptions()).bundle
    clear_cache()
    fast_validation.validate(bundle)  # learned from the model
    assert fast_validation.fast_accepts(bundle)
    return bundle


def _study(bundle: dict[str, Any]) -> dict[str, Any]:
    study: dict[str, Any] = bundle["entry"][0]["resource"]
    assert study["resourceType"] == "ImagingStudy"
    return study


def _rejected(bundle: dict[str, Any]) -> bool:
    try:
        Bundle.model_validate(bundle)
    except Exception:  # noqa: BLE001 - fhir_core raises more than ValidationError for odd input
        return True
    return False


def test_the_prebuilt_item_type_sets_are_the_sets_they_stand_for() -> None:
    types = fast_validation._ITEM_TYPES
    assert types[False, False] == frozenset()
    assert types[True, False] == frozenset({dict})
    assert types[False, True] == frozenset({type(None)})
    assert types[True, True] == frozenset({dict, type(None)})


def test_a_none_item_in_a_complex_list_is_a_new_shape() -> None:
    bundle = _bundle()
    odd = copy.deepcopy(bundle)
    _study(odd)["identifier"].append(None)
    assert not fast_validation.fast_accepts(odd)
    assert _rejected(odd)  # fhir_core: reject_null_complex_elements


def test_a_list_of_only_none_or_of_nothing_is_a_new_shape() -> None:
    bundle = _bundle()
    for items in ([None], []):
        odd = copy.deepcopy(bundle)
        _study(odd)["identifier"] = list(items)
        assert not fast_validation.fast_accepts(odd)


def test_a_non_dict_item_is_never_fast() -> None:
    bundle = _bundle()
    for item in ("x", 1, ["nested"]):
        odd = copy.deepcopy(bundle)
        _study(odd)["identifier"].append(item)
        assert not fast_validation.fast_accepts(odd)
