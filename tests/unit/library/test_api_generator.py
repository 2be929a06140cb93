"""from_generator / iter_bundles_from_generator / convert_instances with synthetic DICOM JSON."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer import (
    ConversionReport,
    convert_instances,
    from_directory,
    from_generator,
    iter_bundles_from_generator,
    iter_results_from_generator,
)
from streamer.errors import ConfigError, MappingError
from streamer.fhir import bundle_json
from streamer.fhir.instance import DatasetView
from streamer.library.collect import InstanceSource
from tests.unit.library._api_helpers import make_instance, resources, study_uid_of

CONFIG = {
    "dicom_timezone": "Europe/Berlin",
    "generator": {"imaging_study": {"add_instances": True}},
}


def _two_studies() -> list[dict[str, Any]]:
    """Study A (2 series, 3 instances) and study B (1 series, 1 instance), same patient, interleaved."""
    return [
        make_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.1", number=1),
        make_instance("1.2.3.2", "1.2.3.2.1", "1.2.3.2.1.1", modality="MR"),
        make_instance("1.2.3.1", "1.2.3.1.1", "1.2.3.1.1.2", number=2),
        make_instance("1.2.3.1", "1.2.3.1.2", "1.2.3.1.2.1"),
    ]


async def _agen(items: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for item in items:
        yield item


def _dump(bundle: Bundle) -> dict[str, Any]:
    out: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    return out


@pytest.mark.parametrize("kind", ["async generator", "list", "sync generator", "tuple"])
async def test_from_generator_accepts_async_and_sync_iterables(kind: str) -> None:
    items = _two_studies()
    sources: dict[str, Callable[[], InstanceSource]] = {
        "async generator": lambda: _agen(items),
        "list": lambda: items,
        "sync generator": lambda: (i for i in items),
        "tuple": lambda: tuple(items),
    }
    source = sources[kind]()
    report = ConversionReport()
    bundle = await from_generator(source, CONFIG, report=report)
    assert isinstance(bundle, Bundle)
    assert bundle.type == "transaction"
    data = _dump(bundle)
    studies = resources(data, "ImagingStudy")
    assert sorted(study_uid_of(s) for s in studies) == ["1.2.3.1", "1.2.3.2"]
    by_uid = {study_uid_of(s): s for s in studies}
    assert by_uid["1.2.3.1"]["numberOfSeries"] == 2
    assert by_uid["1.2.3.1"]["numberOfInstances"] == 3
    assert by_uid["1.2.3.2"]["numberOfSeries"] == 1
    assert len(resources(data, "Patient")) == 1  # one patient shared by both studies, once
    assert (report.studies, report.series, report.instances) == (2, 3, 4)
    assert not report.skipped_instances and not report.failed_studies


async def test_same_result_for_every_input_kind() -> None:
    a = _dump(await from_generator(_agen(_two_studies()), CONFIG))
    b = _dump(await from_generator(_two_studies(), CONFIG))
    assert a == b


async def test_nothing_is_merged_across_studies() -> None:
    data = _dump(await from_generator(_two_studies(), CONFIG))
    for study in resources(data, "ImagingStudy"):
        uid = study_uid_of(study)
        for series in study["series"]:
            assert series["uid"].startswith(uid + ".")
            for inst in series.get("instance", []):
                assert inst["uid"].startswith(series["uid"] + ".")


async def test_iter_bundles_yields_one_bundle_per_study_in_input_order() -> None:
    report = ConversionReport()
    bundles = [
        b async for b in iter_bundles_from_generator(_agen(_two_studies()), CONFIG, report=report)
    ]
    assert all(isinstance(b, Bundle) for b in bundles)
    uids = [[study_uid_of(s) for s in resources(_dump(b), "ImagingStudy")] for b in bundles]
    assert uids == [["1.2.3.1"], ["1.2.3.2"]]
    for b in bundles:
        assert len(resources(_dump(b), "Patient")) == 1
    assert report.studies == 2 and report.instances == 4


async def test_convert_instances_gives_dicts_and_counts() -> None:
    report = await convert_instances(_two_studies(), CONFIG)
    assert [r.study_uid for r in report.results] == ["1.2.3.1", "1.2.3.2"]
    assert [(r.series_count, r.instance_count) for r in report.results] == [(2, 3), (1, 1)]
    for r in report.results:
        assert isinstance(r.bundle, dict)
        Bundle.model_validate(r.bundle)
    assert report.summary_line() == (
        "studies=2 instances=4 skipped_files=0 warnings="
        + str(len(report.warnings))
        + " failed_studies=0"
    )


async def test_inputs_and_config_are_not_mutated() -> None:
    """B19 + the input dicts: the seed mutated the caller's config; we touch neither."""
    items = _two_studies()
    items_before = copy.deepcopy(items)
    cfg: dict[str, Any] = copy.deepcopy(CONFIG)
    cfg_before = copy.deepcopy(cfg)
    await from_generator(items, cfg)
    await convert_instances(items, cfg)
    _ = [b async for b in iter_bundles_from_generator(items, cfg)]
    assert items == items_before
    assert cfg == cfg_before
    assert "id_function" not in cfg


async def test_id_function_from_config_is_used() -> None:
    calls: list[str] = []

    def ids(resource_type: str, ds: DatasetView, extra: str = "") -> str:
        calls.append(resource_type)
        return f"{resource_type.lower()}-custom{('-' + extra) if extra else ''}"

    data = _dump(await from_generator(_two_studies()[:1], {"id_function": ids}))
    (study,) = resources(data, "ImagingStudy")
    assert study["id"] == "imagingstudy-custom"
    assert "ImagingStudy" in calls


async def test_invalid_instances_are_skipped_and_counted() -> None:
    bad = make_instance()
    del bad["0020000D"]
    report = ConversionReport()
    bundle = await from_generator([bad, make_instance("9.9", "9.9.1", "9.9.1.1")], report=report)
    assert [study_uid_of(s) for s in resources(_dump(bundle), "ImagingStudy")] == ["9.9"]
    assert sum(report.skipped_instances.values()) == 1
    assert all(reason.startswith("invalid instance") for reason in report.skipped_instances)


async def test_empty_input_gives_an_empty_transaction_bundle() -> None:
    """The seed raised `ValueError: No ImagingStudy data has been added`."""
    report = ConversionReport()
    bundle = await from_generator(_agen([]), report=report)
    assert bundle.type == "transaction"
    assert not bundle.entry
    assert report.studies == 0


async def test_config_error_before_reading_input() -> None:
    consumed: list[int] = []

    async def gen() -> AsyncIterator[dict[str, Any]]:
        consumed.append(1)
        yield make_instance()

    with pytest.raises(ConfigError, match="dicom_timezone"):
        await from_generator(gen(), {"dicom_timezone": "Mars/Base"})
    assert consumed == []


@pytest.mark.parametrize("bad", ["/some/dir", b"bytes", {"00080018": {}}, 42])
async def test_wrong_input_type_is_a_type_error(bad: Any) -> None:
    with pytest.raises(TypeError):
        await from_generator(bad)


async def test_non_dict_item_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        await from_generator([make_instance(), 3])  # type: ignore[list-item]


async def test_from_directory_with_an_iterable_returns_a_bundle_not_a_coroutine() -> None:
    """B14: the seed's from_directory(iterable) returned an un-awaited coroutine."""
    bundle = await from_directory(_two_studies(), CONFIG)
    assert isinstance(bundle, Bundle)
    assert len(resources(_dump(bundle), "ImagingStudy")) == 2


async def test_pydicom_datasets_are_accepted_as_instances() -> None:
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)  # type: ignore[arg-type]
    data = _dump(await from_generator([ds]))
    assert [study_uid_of(s) for s in resources(data, "ImagingStudy")] == [ds.StudyInstanceUID]


def _failing_ids(resource_type: str, ds: DatasetView, extra: str = "") -> str:
    """An id_function that fails for patient BAD (the mapper turns that into a MappingError)."""
    if ds.get("PatientID") == "BAD":
        raise RuntimeError("boom")
    key = (resource_type, ds.get("PatientID"), ds.get("StudyInstanceUID"), extra)
    return hashlib.sha256(repr(key).encode()).hexdigest()[:40]


async def test_a_study_that_cannot_be_mapped_is_left_out_and_counted() -> None:
    items = [*_two_studies(), make_instance("6.6.6", "6.6.6.1", "6.6.6.1.1", patient_id="BAD")]
    report = ConversionReport()
    bundle = await from_generator(items, {"id_function": _failing_ids}, report=report)
    uids = sorted(study_uid_of(s) for s in resources(_dump(bundle), "ImagingStudy"))
    assert uids == ["1.2.3.1", "1.2.3.2"]
    assert report.studies == 2
    assert sum(report.failed_studies.values()) == 1
    (reason,) = report.failed_studies
    assert reason.startswith("mapping error: id_function raised RuntimeError")
    assert "BAD" not in reason  # no patient data in reasons

    report = ConversionReport()
    bundles = [
        b
        async for b in iter_bundles_from_generator(
            items, {"id_function": _failing_ids}, report=report
        )
    ]
    assert len(bundles) == 2 and sum(report.failed_studies.values()) == 1


async def test_when_no_study_can_be_mapped_from_generator_raises_mapping_error() -> None:
    bad = [make_instance("6.6.6", "6.6.6.1", "6.6.6.1.1", patient_id="BAD")]
    with pytest.raises(MappingError, match="id_function"):
        await from_generator(bad, {"id_function": _failing_ids})
    report = await convert_instances(bad, {"id_function": _failing_ids})
    assert report.studies == 0 and report.failed_study_count == 1
    assert "failed_studies=1" in report.summary_line()


async def test_iter_results_yield_dicts() -> None:
    report = ConversionReport()
    results = [
        r async for r in iter_results_from_generator(_agen(_two_studies()), CONFIG, report=report)
    ]
    assert [r.study_uid for r in results] == ["1.2.3.1", "1.2.3.2"]
    assert all(isinstance(r.bundle, dict) for r in results)
    assert bundle_json(results[0]).startswith(b'{"resourceType":"Bundle"')


def test_library_names_are_exported_lazily() -> None:
    import streamer

    assert streamer.__version__
    for name in streamer.__all__:
        assert getattr(streamer, name) is not None
    with pytest.raises(AttributeError):
        _ = streamer.no_such_name


async def test_from_directory_reads_a_one_shot_iterable_once() -> None:
    """B14: the seed iterated the input twice (a generator came out empty the second time)."""
    report = ConversionReport()
    bundle = await from_directory((i for i in _two_studies()), CONFIG, report=report)
    assert len(resources(_dump(bundle), "ImagingStudy")) == 2
    assert report.instances == 4
