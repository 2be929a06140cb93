"""The fast Bundle validator gives exactly the verdict of ``Bundle.model_validate``.

1. an audit of the assumptions ``fast_validation`` rests on, over every R4B model class;
2. differential checks on every Bundle the mapper builds from pydicom's test files and the benchmark
   workload;
3. hypothesis mutations of valid Bundles (broken values, odd types, deleted/added/renamed keys, emptied
   containers, choice-type swaps), with the original's shapes learned first so the fast path is exercised.

``STREAMER_FAST_VALIDATION_EXAMPLES`` scales the mutation runs (default 700: 2,100 examples in total).
"""

from __future__ import annotations

import copy
import importlib
import os
import pkgutil
import re
import sys
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fhir.resources.R4B as r4b
import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.types import FhirBase, FhirElementOrResourceBase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydicom import dcmread

from streamer.dicom.instance import check_instance
from streamer.errors import MappingError
from streamer.fhir import MappingOptions, build_study_bundle, fast_validation
from streamer.fhir.validation import clear_cache, validate_bundle
from tests.dicom_files import corpus_files

EXAMPLES = int(os.environ.get("STREAMER_FAST_VALIDATION_EXAMPLES", "700"))
ROOT = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------------------------------------- helpers


def reference_ok(bundle: Any) -> bool:
    """The source of truth."""
    try:
        Bundle.model_validate(bundle)
    except Exception:  # noqa: BLE001 - fhir_core raises KeyError/AttributeError/... for some inputs
        return False
    return True


def ours_ok(bundle: Any) -> bool:
    try:
        validate_bundle(bundle, "t")
    except MappingError:
        return False
    return True


def fast_hit(bundle: Any) -> bool:
    """validate_bundle on a Bundle the fast path must accept: True iff it was accepted without fallback."""
    before = fast_validation.stats.fast
    validate_bundle(bundle, "t")
    return fast_validation.stats.fast == before + 1


def assert_same_verdict(bundle: Any) -> tuple[bool, bool]:
    """Verdict equality; returns (fast path decided, valid). The fast path only ever says "valid"."""
    fast = fast_validation.fast_accepts(bundle)
    expected = reference_ok(bundle)
    if fast:
        assert expected, "fast path accepted a Bundle fhir.resources rejects"
    assert ours_ok(bundle) == expected
    return fast, expected


# ---------------------------------------------------------------------------------------------- 1. audit


def _models() -> list[type[FHIRAbstractModel]]:
    found: set[type[FHIRAbstractModel]] = set()
    for info in pkgutil.iter_modules(r4b.__path__):
        module = importlib.import_module(f"fhir.resources.R4B.{info.name}")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, FHIRAbstractModel):
                found.add(value)
    return sorted(found, key=lambda c: c.__qualname__)


def _fhir_bases(annotation: Any) -> list[type[FhirBase]]:
    if isinstance(annotation, type) and issubclass(annotation, FhirBase):
        return [annotation]
    return [b for a in typing.get_args(annotation) for b in _fhir_bases(a)]


def test_audit_no_value_checks_beyond_primitive_fields() -> None:
    """Every validator, config and field kind the fast path relies on, for all R4B models."""
    models = _models()
    assert len(models) > 600
    allowed_model_validators = {
        "reject_null_complex_elements",  # None items of complex lists: in the local shape
        "validate_after_model_construction",  # required primitives + one-of-many: None-ness, in the shape
    }
    for cls in models:
        decorators = cls.__pydantic_decorators__
        extra = set(decorators.model_validators) - allowed_model_validators
        if cls.__name__ == "FHIRPrimitiveExtension":
            # id/extension/fhir_comments None or not: in the local shape
            assert extra == {"validate_extension_or_fhir_comment_required"}
        else:
            assert not extra, cls
        assert not decorators.field_validators, cls
        assert not decorators.validators, cls
        assert not decorators.root_validators, cls
        assert cls.__init__ is FHIRAbstractModel.__init__, cls  # resourceType comparison only
        assert cls.model_post_init is BaseModel.model_post_init, cls
        assert "__get_pydantic_core_schema__" not in vars(cls), cls
        assert dict(cls.model_config) == dict(FHIRAbstractModel.model_config), cls
        assert "resource_type" not in cls.model_fields
        # ExampleScenarioInstance.resourceType is an ordinary code field
        if "resourceType" in cls.model_fields:
            assert fast_validation.field_map(cls)["resourceType"][0] == 0
        for name, info in cls.model_fields.items():
            # no Field(max_length=...) etc. outside the annotation
            assert not info.metadata, (cls, name)
            bases = _fhir_bases(info.annotation)
            assert len(set(bases)) <= 1, (cls, name)  # one model class per complex field
            if bases:
                # complex: Optional[X], X, Optional[List[X]], List[X] (X possibly Optional inside the list)
                assert "Union" not in str(info.annotation).replace(
                    "typing.Optional", ""
                ) or name.endswith("__ext"), (cls, name)
                if issubclass(bases[0], FhirElementOrResourceBase):
                    # dispatch on the child's resourceType
                    assert bases[0].__name__ == "ResourceType"
            spec = fast_validation.field_map(cls)[info.alias or name]
            assert spec[1] == name


def test_audit_enum_values_are_not_enforced() -> None:
    """``enum_values`` in json_schema_extra is documentation only (so it is no value check to mirror)."""
    bundle = Bundle.model_validate({"resourceType": "Bundle", "type": "not-a-bundle-type"})
    assert bundle.type == "not-a-bundle-type"


# ------------------------------------------------------------------------------------ 2. real Bundles


def _pydicom_studies() -> list[list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for file in corpus_files():  # pydicom's test files and pydicom-data's
        path = file.path
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = dcmread(path, stop_before_pixels=True)
                data = ds.to_json_dict(suppress_invalid_tags=True)
        except Exception:  # noqa: BLE001 - not DICOM, or pydicom cannot read it
            continue
        try:
            uid = check_instance(data).study_uid
        except Exception:  # noqa: BLE001 - no usable UIDs: not a Bundle
            continue
        groups.setdefault(uid, []).append(data)
    return list(groups.values())


OPTION_SETS = [
    MappingOptions(),
    MappingOptions(add_instances=True, dicom_timezone="Europe/Berlin"),
    MappingOptions(profile="mii", add_instances=True),
    MappingOptions(profile="mii"),
]


def _built(studies: list[list[dict[str, Any]]], options: MappingOptions) -> list[dict[str, Any]]:
    out = []
    for study in studies:
        try:
            out.append(build_study_bundle(study, options).bundle)
        except MappingError:  # the validator rejected: compare with the reference below
            continue
        except Exception:  # noqa: BLE001 - unusable input, not the validator's business
            continue
    return out


@pytest.fixture(scope="module")
def pydicom_bundles() -> list[dict[str, Any]]:
    studies = _pydicom_studies()
    assert len(studies) > 20
    bundles = [b for opts in OPTION_SETS for b in _built(studies, opts)]
    return [orjson.loads(orjson.dumps(b)) for b in bundles]


@pytest.fixture(scope="module")
def workload_bundles() -> list[dict[str, Any]]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import workload  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    out = []
    for key, opts in (
        ("a", MappingOptions()),
        ("b", MappingOptions(add_instances=True)),
        ("a", MappingOptions(profile="mii", add_instances=True)),
    ):
        for study in workload.generate(key):
            out.append(orjson.loads(orjson.dumps(build_study_bundle(study, opts).bundle)))
    return out


def _real_bundles_agree(bundles: list[dict[str, Any]]) -> None:
    clear_cache()
    for bundle in bundles:
        assert reference_ok(bundle)
        assert ours_ok(bundle)
    # every shape is learned now: a second pass is all fast-path hits, still valid per the reference
    for bundle in bundles:
        assert fast_hit(bundle)


def test_pydicom_bundles_agree(pydicom_bundles: list[dict[str, Any]]) -> None:
    assert len(pydicom_bundles) > 80
    _real_bundles_agree(pydicom_bundles)


def test_workload_bundles_agree(workload_bundles: list[dict[str, Any]]) -> None:
    assert len(workload_bundles) == 401
    _real_bundles_agree(workload_bundles)


def test_learned_shapes_generalise_across_studies(workload_bundles: list[dict[str, Any]]) -> None:
    """Shapes learned from a few studies prove most other studies fast (new values, same node shapes)."""
    clear_cache()
    for bundle in workload_bundles[:20]:
        validate_bundle(bundle, "t")
    hits = sum(fast_validation.fast_accepts(b) for b in workload_bundles[20:200])
    assert hits > 150


# ------------------------------------------------------------------------------------ 3. mutations

ODD_VALUES: list[Any] = [
    "",
    " ",
    "  CT",
    "CT ",
    "C  T",
    "a\tb",
    "x\ny",
    "\x00",
    "\x07bell",
    "ünïcødé",
    "日本語",
    "🙂",
    "2024-13-01",
    "2024-02-30",
    "2023-02-29",
    "2024-02-29",
    "2024-00-10",
    "2024",
    "2024-06",
    "2024-6-1",
    "24-06-01",
    "0000",
    "2024-01-01T00:00:00",
    "2024-01-01T10:00:00Z",
    "2024-01-01T10:00:00+01:00",
    "2024-01-01T23:59:60Z",
    "2024-01-01T23:59:60+14:00",
    "2024-01-01T24:00:00Z",
    "2024-01-01T10:00:00+15:00",
    "2024-01-01T10:00Z",
    "2024-01-01T10:00:00.123456789-05:00",
    "23:59:60",
    "10:00:00",
    "25:00:00",
    "1.2.840.10008.5.1.4.1.1.2",
    "urn:oid:1.2.3",
    "urn:oid:1.02.3",
    "urn:uuid:0b8f9a1e-0000-5000-8000-000000000002",
    "http://example.org/a b",
    "http://example.org/x",
    "Patient/1",
    "/Patient/1",
    "a" * 64,
    "a" * 65,
    "a" * 300,
    "x" * 5000,
    "id_with_underscore",
    "id.with-dots",
    "transaction",
    "Patient",
    "Bundle",
    "Coding",
    "Resource",
    "DomainResource",
    "ImagingStudy",
    "Observation",
    "PUT",
    "put",
    "available",
    "final",
    "0",
    "-1",
    "1.5",
    "1e3",
    "NaN",
    "true",
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    2**40,
    -(2**31),
    -(2**31) - 1,
    0.0,
    -0.0,
    1.0,
    1.5,
    -2.25,
    1e300,
    1e-7,
    float("inf"),
    float("nan"),
    True,
    False,
    None,
    {},
    [],
    [None],
    ["x"],
    [{}],
    {"a": 1},
    {"extension": []},
    {"id": "x"},
    {"extension": [{"url": "http://e.org/x", "valueString": "v"}]},
    {"reference": "Patient/1"},
    {"system": "http://s.org", "code": "c"},
    {"value": 1.5, "unit": "kg"},
    ("tuple",),
    b"bytes",
]

RENAMES = [
    "valueString",
    "valueQuantity",
    "valueCodeableConcept",
    "valueBoolean",
    "valueInteger",
    "effectiveDateTime",
    "effectivePeriod",
    "effectiveInstant",
    "code",
    "system",
    "display",
    "id",
    "text",
    "status",
    "extension",
    "modifierExtension",
    "fhir_comments",
    "resourceType",
    "resource_type",
    "unknownKey",
    "_status",
    "_code",
    "_given",
    "class_",
    "type__ext",
    "",
]


CHOICE = re.compile(
    r"^(value|effective|deceased|multipleBirth|onset|abatement|occurrence|timing|born|age|"
    r"serviced|performed|defaultValue|fixed|pattern)([A-Z][A-Za-z]*)$"
)
CHOICE_TYPES = [
    "String",
    "Quantity",
    "CodeableConcept",
    "Boolean",
    "Integer",
    "DateTime",
    "Period",
    "Instant",
    "Time",
    "Range",
    "Ratio",
    "Reference",
    "Decimal",
    "Coding",
    "Attachment",
]


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    out = [(path, value)]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(_nodes(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(_nodes(v, (*path, i)))
    return out


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for p in path[:-1]:
        node = node[p]
    return node


def _mutate(bundle: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(orjson.dumps(bundle))
    nodes = _nodes(out)[1:]
    path, node = data.draw(st.sampled_from(nodes), label="node")
    parent, last = _parent(out, path), path[-1]
    scalar = not isinstance(node, (dict, list))
    ops = ["replace", "delete", "add_sibling", "rename", "ext_sibling", "wrap_list", "none"]
    if scalar:
        ops += ["replace"] * 6 + ["same_type"] * 6
    else:
        ops += ["empty", "add_child", "append_item"]
    if isinstance(last, str) and CHOICE.match(last):
        ops += ["choice_swap"] * 4 + ["choice_dup"] * 2
    op = data.draw(st.sampled_from(ops), label="op")
    odd = st.one_of(
        st.sampled_from(ODD_VALUES),
        st.text(max_size=80),
        st.integers(min_value=-(2**45), max_value=2**45),
        st.floats(),
        st.dates().map(lambda d: d.isoformat()),
    )
    if op == "replace":
        parent[last] = copy.deepcopy(data.draw(odd, label="value"))
    elif op == "same_type":
        if isinstance(node, bool):
            parent[last] = not node
        elif isinstance(node, int):
            parent[last] = data.draw(st.integers(min_value=-3, max_value=2**33), label="int")
        elif isinstance(node, float):
            parent[last] = data.draw(st.floats(allow_nan=False, width=32), label="float")
        elif isinstance(node, str):
            parent[last] = data.draw(
                st.one_of(
                    st.text(alphabet="abcXYZ019.-: /", min_size=0, max_size=20),
                    st.sampled_from([node + " ", " " + node, node[:1], node * 2, node.upper()]),
                    st.sampled_from([v for v in ODD_VALUES if isinstance(v, str)]),
                ),
                label="str",
            )
    elif op in ("choice_swap", "choice_dup"):
        match = CHOICE.match(str(last))
        assert match is not None
        new_key = match.group(1) + data.draw(st.sampled_from(CHOICE_TYPES), label="choice")
        moved = copy.deepcopy(node) if op == "choice_dup" else parent.pop(last)
        if data.draw(st.booleans(), label="new value"):
            moved = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES), label="value"))
        parent[new_key] = moved
    elif op == "delete":
        del parent[last]
    elif op == "none":
        parent[last] = None
    elif op == "wrap_list":
        parent[last] = [node]
    elif op == "empty":
        node.clear()
    elif op in ("add_sibling", "rename", "ext_sibling"):
        target = parent if isinstance(parent, dict) else None
        if target is None:
            parent.insert(data.draw(st.integers(0, len(parent)), label="pos"), copy.deepcopy(node))
        elif op == "rename":
            new = data.draw(st.sampled_from(RENAMES), label="key")
            target[new] = target.pop(last)
        elif op == "ext_sibling":
            key = f"_{last}" if isinstance(last, str) else "_x"
            target[key] = copy.deepcopy(data.draw(st.sampled_from(ODD_VALUES), label="ext"))
        else:
            new = data.draw(st.sampled_from(RENAMES), label="key")
            target[new] = copy.deepcopy(data.draw(odd, label="value"))
    elif op == "add_child":
        if isinstance(node, dict):
            new = data.draw(st.sampled_from(RENAMES), label="key")
            node[new] = copy.deepcopy(data.draw(odd, label="value"))
        else:
            node.append(copy.deepcopy(data.draw(odd, label="item")))
    elif op == "append_item":
        if isinstance(node, list) and node:
            node.append(copy.deepcopy(node[0]))
        elif isinstance(node, list):
            node.append(None)
        else:
            node["fhir_comments"] = ["c"]
    return out


@pytest.fixture(scope="module")
def mutation_bases(
    pydicom_bundles: list[dict[str, Any]], workload_bundles: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    step = max(1, len(pydicom_bundles) // 25)
    return [*pydicom_bundles[::step], *workload_bundles[:3], workload_bundles[-1]]


_counts = {"examples": 0, "fast": 0, "valid": 0}


def _run_mutations(
    bases: list[dict[str, Any]], examples: int, pick: Callable[[st.DataObject], dict[str, Any]]
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def check(data: st.DataObject) -> None:
        base = pick(data)
        assert fast_hit(base)  # its shapes are learned: the mutation runs through the fast path
        mutated = _mutate(base, data)
        fast, valid = assert_same_verdict(mutated)
        _counts["examples"] += 1
        _counts["fast"] += fast
        _counts["valid"] += valid

    clear_cache()
    for base in bases:
        validate_bundle(base, "t")
    check()


def test_mutations_agree_with_fhir_resources(mutation_bases: list[dict[str, Any]]) -> None:
    _run_mutations(
        mutation_bases,
        EXAMPLES * 2,
        lambda data: data.draw(st.sampled_from(mutation_bases), label="base"),
    )


def test_mutations_of_small_bundle_agree(workload_bundles: list[dict[str, Any]]) -> None:
    """A small MII Bundle (extensions, meta.profile, one instance per series) mutated densely."""
    small = orjson.loads(orjson.dumps(workload_bundles[-2]))
    for series in _study(small)["series"]:
        del series["instance"][1:]
    assert reference_ok(small)
    _run_mutations([small], EXAMPLES, lambda data: small)


def test_mutation_runs_exercised_the_fast_path() -> None:
    """Many mutated Bundles stayed valid and were proven so by the fast path (not just by fallback)."""
    if _counts["examples"] == 0:
        pytest.skip("mutation tests did not run")
    print(f"mutation counts: {_counts}")  # shown with -s
    assert _counts["valid"] > _counts["examples"] // 10
    assert _counts["fast"] > _counts["examples"] // 20


# ------------------------------------------------------------------------------------ 4. targeted cases


@pytest.fixture
def small(workload_bundles: list[dict[str, Any]]) -> dict[str, Any]:
    clear_cache()
    base: dict[str, Any] = orjson.loads(orjson.dumps(workload_bundles[0]))
    validate_bundle(base, "t")
    assert fast_hit(base)
    return base


def _study(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"
    )


@pytest.mark.parametrize(
    ("mutate", "valid"),
    [
        (lambda s: s.__setitem__("started", "2024-02-30T10:00:00Z"), False),
        (lambda s: s.__setitem__("started", "2024-02-29T10:00:00Z"), True),
        (lambda s: s.__setitem__("started", "2016-12-31T23:59:60Z"), True),
        (lambda s: s.__setitem__("started", "2024-01-01T10:00:00"), False),
        (lambda s: s.__setitem__("numberOfSeries", -1), False),
        (lambda s: s.__setitem__("numberOfSeries", 2**40), False),
        (lambda s: s.__setitem__("numberOfSeries", 3.0), True),
        (lambda s: s.__setitem__("numberOfSeries", 3.5), False),
        (lambda s: s.__setitem__("numberOfSeries", "3"), True),
        (lambda s: s.__setitem__("numberOfSeries", True), True),  # lax int
        (lambda s: s.__setitem__("status", " available"), False),
        (lambda s: s.__setitem__("status", "whatever"), True),
        (lambda s: s.__setitem__("id", "a" * 255), True),  # fhir_core: TYPES_ID_MAX_LENGTH = 255
        (lambda s: s.__setitem__("id", "a" * 256), False),
        (lambda s: s.__setitem__("id", "a_b"), False),
        (lambda s: s.__setitem__("status", None), False),
        (lambda s: s.__setitem__("_status", {"extension": []}), True),
        (lambda s: s.__setitem__("modality", []), True),
        (lambda s: s.__setitem__("modality", [None]), False),
        (lambda s: s.__setitem__("resourceType", "Patient"), False),
        (lambda s: s.__setitem__("series", {}), False),
        (lambda s: s["subject"].__setitem__("reference", "has space"), True),  # a string
        (lambda s: s["subject"].__setitem__("reference", ""), False),
        # the uri pattern \S* is searched, not fully matched: spaces pass
        (lambda s: s["modality"][0].__setitem__("system", "urn:has space"), True),
        (lambda s: s["subject"].__setitem__("display", True), False),
        (lambda s: s["subject"].__setitem__("display", ""), False),
        (lambda s: s["subject"].__setitem__("display", "x" * 100_000), True),
        (lambda s: s["subject"].__setitem__("display", "\x00"), True),
    ],
)
def test_targeted_values(
    small: dict[str, Any], mutate: Callable[[dict[str, Any]], None], valid: bool
) -> None:
    mutate(_study(small))
    assert reference_ok(small) is valid
    assert_same_verdict(small)


def test_required_primitive_missing_with_extension_sibling(small: dict[str, Any]) -> None:
    """Required ``status`` absent: valid only with a ``_status`` carrying a non-empty extension list."""
    study = _study(small)
    del study["status"]
    ext = {"extension": [{"url": "http://e.org/x", "valueString": "v"}]}
    cases: tuple[tuple[dict[str, Any], bool], ...] = (
        ({"extension": []}, False),
        (ext, True),
        ({"id": "i"}, False),
        (ext, True),
    )
    for sibling, valid in cases:
        study["_status"] = copy.deepcopy(sibling)
        assert reference_ok(small) is valid
        assert_same_verdict(small)
    for sibling, valid in cases:  # the valid shape is learned now; the invalid ones never are
        study["_status"] = copy.deepcopy(sibling)
        assert fast_validation.fast_accepts(small) is valid


def test_string_where_complex_expected_is_never_fast(small: dict[str, Any]) -> None:
    """fhir_core parses a string at a complex field as JSON: always decided by fhir.resources."""
    _study(small)["subject"] = orjson.dumps(_study(small)["subject"]).decode()
    assert reference_ok(small)
    assert not fast_validation.fast_accepts(small)
    assert ours_ok(small)


def test_rejection_message_names_locations_not_values(small: dict[str, Any]) -> None:
    _study(small)["started"] = "Secret-2024-13-01"
    with pytest.raises(MappingError, match=r"entry\.0\.resource\.started") as exc:
        validate_bundle(small, "study 1")
    assert "Secret" not in str(exc.value)


def test_non_validation_errors_become_mapping_errors(small: dict[str, Any]) -> None:
    small["entry"][0]["resource"]["resourceType"] = "NoSuchType"
    with pytest.raises(MappingError, match=r"entry\.0\.resource\.resourceType"):
        validate_bundle(small, "t")
    with pytest.raises(Exception) as exc:  # noqa: PT011 - fhir_core's own exception type
        Bundle.model_validate(small)
    assert not isinstance(exc.value, ValidationError)


def test_threads_agree(workload_bundles: list[dict[str, Any]]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    clear_cache()
    bundles = workload_bundles[:60]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(ours_ok, bundles * 4))
    assert all(results)


@pytest.mark.parametrize(
    ("shapes", "values"),
    [(16, 64), (fast_validation.Limits().shapes, 64)],
    ids=["tiny", "tiny-values"],
)
def test_bounded_caches_still_agree(
    workload_bundles: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    shapes: int,
    values: int,
) -> None:
    """Tiny caches: generations switch constantly, verdicts stay right, sizes stay bounded."""
    monkeypatch.setattr(fast_validation.limits, "shapes", shapes)
    monkeypatch.setattr(fast_validation.limits, "values", values)
    clear_cache()
    for bundle in workload_bundles[:30] * 2:
        assert ours_ok(bundle)
        sizes = fast_validation.cache_sizes()
        assert 0 < sizes.shapes <= shapes and sizes.values <= values
    if shapes > 16:
        # the shapes fit: the second pass runs the fast path, whose values cache fills up
        assert fast_validation.stats.fast >= 30
        assert fast_validation.cache_sizes().values > values // 2
    broken = orjson.loads(orjson.dumps(workload_bundles[0]))
    _study(broken)["started"] = "2024-02-30T10:00:00Z"
    assert not ours_ok(broken)
    clear_cache()
