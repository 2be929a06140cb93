"""The directly built Bundle model (``streamer.fhir.model``) is the model ``Bundle.model_validate`` gives.

Checked node by node (class, every ``__dict__`` value with its exact type and repr, fields set, extra, private)
and by ``model_dump`` / ``model_dump_json`` over pydicom's files, the golden Bundles and the bench workloads;
invalid input still fails exactly as it did; the library calls return real fhir.resources models.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import pkgutil
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import fhir.resources.R4B as r4b
import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.imagingstudy import ImagingStudy
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError
from pydicom import dcmread
from pydicom.data import get_testdata_files

from streamer.dicom.instance import check_instance
from streamer.fhir import MappingOptions, build_study_bundle
from streamer.fhir import model as fast_model
from streamer.fhir.model import bundle_model, model_from_validated
from streamer.library import (
    from_directory,
    from_directory_json,
    from_generator,
    from_generator_json,
    iter_bundles_from_generator,
)
from streamer.library.mapping import INLINE_MAX_INSTANCES, off_loop
from tests.unit.fhir._fhir_cases import CASES
from tests.unit.library._api_helpers import make_instance

ROOT = Path(__file__).resolve().parents[3]
GOLDEN = ROOT / "tests" / "unit" / "fhir" / "golden"

OPTION_SETS = [
    MappingOptions(),
    MappingOptions(add_instances=True, dicom_timezone="Europe/Berlin"),
    MappingOptions(profile="mii", add_instances=True),
]


def assert_same_model(got: Any, ref: Any, path: str = "Bundle") -> None:
    """Same class at every node, same fields set, and every value of the same type with the same repr."""
    assert type(got) is type(ref), path
    if isinstance(ref, FHIRAbstractModel):
        assert got.model_fields_set == ref.model_fields_set, path
        assert got.__pydantic_extra__ == ref.__pydantic_extra__, path
        assert got.__pydantic_private__ == ref.__pydantic_private__, path
        # model_dump() leaves fhir_core's serialization flags in __dict__: compare the fields only
        fields = type(ref).model_fields
        assert [k for k in got.__dict__ if k in fields] == [k for k in ref.__dict__ if k in fields]
        assert set(fields) <= set(got.__dict__), path
        for key in fields:
            assert_same_model(got.__dict__[key], ref.__dict__[key], f"{path}.{key}")
    elif isinstance(ref, list):
        assert len(got) == len(ref), path
        for i, (g, r) in enumerate(zip(got, ref, strict=True)):
            assert_same_model(g, r, f"{path}[{i}]")
    else:
        assert repr(got) == repr(ref), path


def assert_equivalent(bundle: dict[str, Any]) -> None:
    before = copy.deepcopy(bundle)
    built = fast_model.stats.built
    got = model_from_validated(bundle)
    assert fast_model.stats.built == built + 1, "fell back to model_validate"
    ref = Bundle.model_validate(bundle)
    assert_same_model(got, ref)
    assert got == ref
    assert got.model_dump_json() == ref.model_dump_json()
    assert got.model_dump(exclude_none=True) == ref.model_dump(exclude_none=True)
    assert bundle == before  # the input dict is only read


def _resources(bundle: Bundle) -> list[Any]:
    return [e.resource for e in bundle.entry or []]


def _pydicom_studies() -> list[list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path in get_testdata_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                data = dcmread(path, stop_before_pixels=True).to_json_dict(
                    suppress_invalid_tags=True
                )
            uid = check_instance(data).study_uid
        except Exception:  # noqa: BLE001 - not DICOM or no usable UIDs: no Bundle to compare
            continue
        groups.setdefault(uid, []).append(data)
    return list(groups.values())


@pytest.fixture(scope="module")
def pydicom_bundles() -> list[dict[str, Any]]:
    out = []
    for options in OPTION_SETS:
        for study in _pydicom_studies():
            try:
                out.append(build_study_bundle(study, options).bundle)
            except Exception:  # noqa: BLE001 - a study that cannot be mapped has no Bundle
                continue
    return out


def test_pydicom_corpus_builds_the_same_model(pydicom_bundles: list[dict[str, Any]]) -> None:
    assert len(pydicom_bundles) > 80
    for bundle in pydicom_bundles:
        assert_equivalent(bundle)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_inputs_build_the_same_model(name: str) -> None:
    make, options = CASES[name]
    assert_equivalent(build_study_bundle(make(), options).bundle)


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_files_build_the_same_model(path: Path) -> None:
    assert_equivalent(orjson.loads(path.read_bytes())["bundle"])


def test_bench_workloads_build_the_same_model() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import workload  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    for key, options in (
        ("a", MappingOptions(dicom_timezone="Europe/Berlin")),
        ("b", MappingOptions(add_instances=True)),
        ("a", MappingOptions(profile="mii", add_instances=True)),
    ):
        for study in workload.generate(key)[:40]:
            assert_equivalent(build_study_bundle(study, options).bundle)


def test_every_r4b_class_is_built_directly() -> None:
    """No R4B class has what the direct build cannot copy (private attributes, post-init, factories)."""
    classes = []
    for info in pkgutil.iter_modules(r4b.__path__):
        if info.name.startswith("tests") or info.name.startswith("fhirtypes"):
            continue
        module = importlib.import_module(f"fhir.resources.R4B.{info.name}")
        classes += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type)
            and issubclass(obj, FHIRAbstractModel)
            and obj.__module__ == module.__name__
        ]
    assert len(classes) > 600
    assert [c.__name__ for c in classes if fast_model._spec(c) is None] == []


def test_converted_values_are_the_validated_types(pydicom_bundles: list[dict[str, Any]]) -> None:
    bundle = next(b for b in pydicom_bundles if '"started"' in orjson.dumps(b).decode())
    model = model_from_validated(bundle)
    study = next(r for r in _resources(model) if isinstance(r, ImagingStudy))
    ref = next(r for r in _resources(Bundle.model_validate(bundle)) if r.id == study.id)
    assert type(study.started) is type(ref.started)
    assert study.started == ref.started


def _observation_bundle(value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1d4a3e-0c6b-4c36-9d36-8f0c7d0a1b2c",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"text": "weight"},
                    "effectiveDateTime": "2024-03-15T10:15:00+01:00",
                    "valueQuantity": {"value": value, "unit": "kg"},
                    "_status": {"extension": [{"url": "http://e.org/x", "valueString": "y"}]},
                },
            }
        ],
    }


@pytest.mark.parametrize("value", [0.0, -0.0, 70, 70.0, 70.25, 1e-7, True])
def test_decimal_values_and_their_memo(value: Any) -> None:
    """-0.0 and 0.0 (equal floats, different Decimals) and ints vs floats never share a memo entry."""
    for v in (value, 0.0, -0.0, value):
        bundle = _observation_bundle(v)
        try:
            ref = Bundle.model_validate(bundle)
        except ValidationError:
            with pytest.raises(ValidationError):
                bundle_model(bundle)
            continue
        got = bundle_model(bundle)
        assert_same_model(got, ref)
        assert got.model_dump_json() == ref.model_dump_json()
        assert isinstance(_resources(got)[0], Observation)


def _errors(exc: ValidationError) -> list[tuple[Any, ...]]:
    return [(e["type"], e["loc"]) for e in exc.errors()]


def _mutations(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for key, value in (
        ("started", "2024-13-45"),
        ("status", "not a code "),
        ("unknownElement", 1),
        ("status", None),
        ("subject", "Patient/1"),
        ("series", [None]),
        ("resourceType", "Patient"),
        ("numberOfSeries", -1),
    ):
        mutated = copy.deepcopy(bundle)
        study = next(
            e["resource"]
            for e in mutated["entry"]
            if e["resource"]["resourceType"] == "ImagingStudy"
        )
        study[key] = value
        out.append(mutated)
    return out


def test_invalid_dicts_fail_as_model_validate_does() -> None:
    bundle = build_study_bundle([make_instance()], MappingOptions()).bundle
    for mutated in _mutations(bundle):
        with pytest.raises(ValidationError) as ref:
            Bundle.model_validate(mutated)
        with pytest.raises(ValidationError) as got:
            bundle_model(mutated)
        assert _errors(got.value) == _errors(ref.value)


def test_unexpected_shapes_fall_back_to_model_validate() -> None:
    """Input the direct build does not handle (field names instead of aliases, a JSON string where a complex
    element belongs) gives model_validate's own model or its error, never a different one."""
    bundle = build_study_bundle([make_instance()], MappingOptions()).bundle
    by_name = copy.deepcopy(bundle)
    by_name["entry"][0]["resource"]["implicitRules"] = "http://example.org/rules"
    by_name["type__ext"] = {"extension": [{"url": "http://e.org/x", "valueString": "y"}]}
    fallback = fast_model.stats.fallback
    assert_same_model(model_from_validated(by_name), Bundle.model_validate(by_name))
    assert fast_model.stats.fallback == fallback + 1
    as_text = copy.deepcopy(bundle)
    as_text["meta"] = '{"versionId": "1"}'
    assert_same_model(model_from_validated(as_text), Bundle.model_validate(as_text))


def test_returned_model_is_independent_of_the_dict() -> None:
    bundle = build_study_bundle([make_instance(name="Doe^John^Q")], MappingOptions()).bundle
    model = model_from_validated(bundle)
    patient = next(r for r in _resources(model) if isinstance(r, Patient))
    assert patient.name is not None and patient.name[0].given is not None
    patient.name[0].given.append("Extra")
    source = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    assert "Extra" not in source["name"][0]["given"]
    with pytest.raises(ValidationError):
        patient.gender = "not-a-code "  # validate_assignment still applies


def _instances() -> list[dict[str, Any]]:
    return [
        make_instance(study="1.2.3.1", series="1.2.3.1.1", sop="1.2.3.1.1.1"),
        make_instance(study="1.2.3.1", series="1.2.3.1.1", sop="1.2.3.1.1.2", number=2),
        make_instance(study="1.2.3.2", series="1.2.3.2.1", sop="1.2.3.2.1.1"),
    ]


def test_from_generator_returns_a_real_bundle_model() -> None:
    config = {"dicom_timezone": "Europe/Berlin"}
    built = fast_model.stats.built
    bundle = asyncio.run(from_generator(_instances(), config))
    assert fast_model.stats.built == built + 1
    assert type(bundle) is Bundle
    assert bundle.entry is not None
    studies = [r for r in _resources(bundle) if isinstance(r, ImagingStudy)]
    assert len(studies) == 2
    assert all(type(s.started).__name__ == "datetime" for s in studies)
    assert isinstance(_resources(bundle)[0].id, str)
    assert_same_model(bundle, Bundle.model_validate(bundle.model_dump()))
    as_json = asyncio.run(from_generator_json(_instances(), config))
    assert orjson.loads(as_json) == orjson.loads(bundle.model_dump_json())


def test_iter_bundles_and_empty_input_give_models() -> None:
    async def collect() -> list[Bundle]:
        return [b async for b in iter_bundles_from_generator(_instances())]

    bundles = asyncio.run(collect())
    assert len(bundles) == 2 and all(type(b) is Bundle for b in bundles)
    empty = asyncio.run(from_generator([]))
    assert type(empty) is Bundle and empty.entry is None and empty.type == "transaction"
    assert orjson.loads(asyncio.run(from_generator_json([]))) == orjson.loads(
        empty.model_dump_json()
    )


def test_from_directory_json_matches_from_directory(tmp_path: Path) -> None:
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (tmp_path / name).write_bytes(Path(str(get_testdata_files(name)[0])).read_bytes())
    config = {"generator": {"imaging_study": {"add_instances": True}}}
    bundle = asyncio.run(from_directory(tmp_path, config))
    assert type(bundle) is Bundle
    assert_same_model(bundle, Bundle.model_validate(orjson.loads(bundle.model_dump_json())))
    raw = asyncio.run(from_directory_json(tmp_path, config))
    assert orjson.loads(raw) == orjson.loads(bundle.model_dump_json())


def test_small_inputs_are_mapped_inline_large_ones_in_a_worker_thread() -> None:
    main = threading.get_ident()
    small = asyncio.run(off_loop(INLINE_MAX_INSTANCES, threading.get_ident))
    large = asyncio.run(off_loop(INLINE_MAX_INSTANCES + 1, threading.get_ident))
    assert small == main
    assert large != main
