"""from_directory / iter_bundles_from_directory / convert_directory on files (B14, DICOMDIR, non-DICOM files)."""

from __future__ import annotations

import os
import shutil
from collections import defaultdict
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from streamer import (
    ConversionReport,
    convert_directory,
    from_directory,
    iter_bundles_from_directory,
)
from streamer.dicom.files import SKIP_DICOMDIR, SKIP_EMPTY, SKIP_NOT_DICOM
from streamer.errors import InvalidMessageError
from tests.unit.library._api_helpers import pydicom_test_dir, resources, study_uid_of

DATA = pydicom_test_dir()
DICOMDIR_TESTS = DATA / "dicomdirtests"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


def _write_instance(
    path: Path, study: str, series: str, sop: str, *, preamble: bool = True
) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.Modality = "CT"
    ds.PatientID = "SYN-1"
    ds.PatientName = "Synthetic^Patient"
    ds.StudyDate = "20240315"
    ds.InstanceNumber = 1
    ds.PixelData = b"\x00" * 4096  # bulk data: must not end up in the DICOM JSON
    ds["PixelData"].VR = "OW"
    path.parent.mkdir(parents=True, exist_ok=True)
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = UID(sop)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    else:  # a raw dataset (no preamble, no file meta), implicit VR little endian
        ds.save_as(path, implicit_vr=True, little_endian=True)


@pytest.fixture
def mixed_dir(tmp_path: Path) -> Path:
    """3 studies in 5 DICOM files, plus a text file, 2 DICOMDIRs, an empty file and a broken file."""
    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(DATA / "CT_small.dcm", root / "ct.dcm")
    shutil.copy(DATA / "MR_small.dcm", root / "mr.dcm")
    _write_instance(
        root / "syn" / "s1" / "1.dcm", "1.2.826.0.1.99", "1.2.826.0.1.99.1", "1.2.826.0.1.99.1.1"
    )
    _write_instance(
        root / "syn" / "s2" / "2", "1.2.826.0.1.99", "1.2.826.0.1.99.2", "1.2.826.0.1.99.2.1"
    )
    _write_instance(
        root / "raw" / "noheader",
        "1.2.826.0.1.99",
        "1.2.826.0.1.99.2",
        "1.2.826.0.1.99.2.2",
        preamble=False,
    )
    (root / "notes.txt").write_text("not a DICOM file\n" * 20)
    shutil.copy(DICOMDIR_TESTS / "DICOMDIR", root / "DICOMDIR")
    shutil.copy(
        DICOMDIR_TESTS / "DICOMDIR-empty.dcm", root / "syn" / "index.dcm"
    )  # DICOMDIR by SOP class
    (root / "empty.dcm").write_bytes(b"")
    return root


async def test_from_directory_skips_and_counts_non_dicom_and_dicomdir(mixed_dir: Path) -> None:
    report = ConversionReport()
    bundle = await from_directory(mixed_dir, {"dicom_timezone": "UTC"}, report=report)
    assert isinstance(bundle, Bundle)  # B14: a Bundle, never a coroutine
    data: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    uids = sorted(study_uid_of(s) for s in resources(data, "ImagingStudy"))
    ct = pydicom.dcmread(DATA / "CT_small.dcm", stop_before_pixels=True)
    mr = pydicom.dcmread(DATA / "MR_small.dcm", stop_before_pixels=True)
    assert uids == sorted([ct.StudyInstanceUID, mr.StudyInstanceUID, "1.2.826.0.1.99"])
    assert report.studies == 3
    assert report.instances == 5
    assert report.files_read == 5
    assert report.skipped_files == {SKIP_DICOMDIR: 2, SKIP_NOT_DICOM: 1, SKIP_EMPTY: 1}
    assert {Path(s.path).name for s in report.skipped} == {
        "DICOMDIR",
        "index.dcm",
        "notes.txt",
        "empty.dcm",
    }
    syn = next(s for s in resources(data, "ImagingStudy") if study_uid_of(s) == "1.2.826.0.1.99")
    assert syn["numberOfSeries"] == 2 and syn["numberOfInstances"] == 3


async def test_bulk_data_is_not_carried(mixed_dir: Path) -> None:
    from streamer.dicom.files import read_file

    outcome = read_file(mixed_dir / "syn" / "s1" / "1.dcm")
    assert not isinstance(outcome, str)
    instance, dropped = outcome
    assert "7FE00010" not in instance and not dropped
    assert instance["0020000D"]["Value"] == ["1.2.826.0.1.99"]


async def test_strict_mode_raises_on_the_first_unusable_file(mixed_dir: Path) -> None:
    with pytest.raises(InvalidMessageError, match=r"notes\.txt|empty\.dcm"):
        await from_directory(mixed_dir, {"directory_parser": {"skip_invalid_files": False}})


async def test_strict_mode_still_skips_dicomdir(tmp_path: Path) -> None:
    shutil.copy(DICOMDIR_TESTS / "DICOMDIR", tmp_path / "DICOMDIR")
    shutil.copy(DATA / "CT_small.dcm", tmp_path / "ct.dcm")
    report = ConversionReport()
    await from_directory(tmp_path, {"directory_parser.skip_invalid_files": False}, report=report)
    assert report.studies == 1 and report.skipped_files == {SKIP_DICOMDIR: 1}


async def test_single_file_path(tmp_path: Path) -> None:
    report = ConversionReport()
    bundle = await from_directory(DATA / "CT_small.dcm", report=report)
    assert report.studies == 1 and bundle.entry


async def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await from_directory(tmp_path / "nope")


async def test_directory_without_dicom_gives_empty_bundle(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    report = ConversionReport()
    bundle = await from_directory(tmp_path, report=report)
    assert bundle.type == "transaction" and not bundle.entry
    assert report.skipped_files == {SKIP_NOT_DICOM: 1}


async def test_iter_bundles_from_directory_one_per_study(mixed_dir: Path) -> None:
    report = ConversionReport()
    bundles = [b async for b in iter_bundles_from_directory(mixed_dir, report=report)]
    assert len(bundles) == 3 == report.studies
    for b in bundles:
        data = b.model_dump(mode="json", exclude_none=True)
        assert len(resources(data, "ImagingStudy")) == 1
        assert len(resources(data, "Patient")) == 1


# --- pydicom's dicomdirtests tree -----------------------------------------------------------------------


def _expected_tree(root: Path) -> dict[str, Any]:
    """Read the tree with plain pydicom, independently of the code under test."""
    studies: dict[str, set[str]] = defaultdict(set)
    instances: dict[str, set[str]] = defaultdict(set)
    patients: set[tuple[str, str]] = set()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                ds = pydicom.dcmread(Path(dirpath, name), stop_before_pixels=True)
            except pydicom.errors.InvalidDicomError:
                continue
            if ds.file_meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP_CLASS:
                continue
            studies[ds.StudyInstanceUID].add(ds.SeriesInstanceUID)
            instances[ds.StudyInstanceUID].add(ds.SOPInstanceUID)
            patients.add((str(ds.get("PatientID", "")), str(ds.get("IssuerOfPatientID", ""))))
    return {"studies": studies, "instances": instances, "patients": patients}


async def test_dicomdirtests_tree_studies_patients_series_nothing_merged() -> None:
    expected = _expected_tree(DICOMDIR_TESTS)
    # known facts about the tree (pydicom 3.0): 7 studies, 14 series, 3 patients
    assert (len(expected["studies"]), len(expected["patients"])) == (7, 3)
    assert sum(len(s) for s in expected["studies"].values()) == 14

    report = ConversionReport()
    bundle = await from_directory(
        DICOMDIR_TESTS, {"dicom_timezone": "Europe/Berlin"}, report=report
    )
    data: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    studies = resources(data, "ImagingStudy")
    assert len(studies) == len(expected["studies"]) == report.studies
    assert len(resources(data, "Patient")) == len(expected["patients"])
    assert report.series == 14
    assert report.instances == sum(len(i) for i in expected["instances"].values())
    for study in studies:
        uid = study_uid_of(study)
        assert {s["uid"] for s in study["series"]} == expected["studies"][uid]  # nothing merged
        assert study["numberOfInstances"] == len(expected["instances"][uid])
    # every ImagingStudy's subject is a Patient of this Bundle
    patient_refs = {f"Patient/{p['id']}" for p in resources(data, "Patient")}
    assert {s["subject"]["reference"] for s in studies} <= patient_refs | {
        e["fullUrl"] for e in data["entry"]
    }
    # 8 DICOMDIR files (two named DICOMDIR, six by SOP class) and 2 READMEs
    assert report.skipped_files == {SKIP_DICOMDIR: 8, SKIP_NOT_DICOM: 2}
    assert not report.failed_studies and not report.skipped_instances


async def test_dicomdirtests_98892003_holds_three_studies() -> None:
    """The seed made 1 ImagingStudy with 7 series and 17 instances of this folder."""
    report = ConversionReport()
    bundles = [
        b async for b in iter_bundles_from_directory(DICOMDIR_TESTS / "98892003", report=report)
    ]
    assert len(bundles) == 3 == report.studies
    expected = _expected_tree(DICOMDIR_TESTS / "98892003")
    assert report.instances == sum(len(i) for i in expected["instances"].values())
    for b in bundles:
        (study,) = resources(b.model_dump(mode="json", exclude_none=True), "ImagingStudy")
        assert {s["uid"] for s in study["series"]} == expected["studies"][study_uid_of(study)]


async def test_convert_directory_with_several_paths() -> None:
    report = await convert_directory([DICOMDIR_TESTS / "98892003", DICOMDIR_TESTS / "98892001"])
    assert report.studies == 4
    assert len(report.results) == 4
    assert len({r.study_uid for r in report.results}) == 4
