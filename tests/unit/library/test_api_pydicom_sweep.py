"""Every real DICOM file of the corpus, alone, through from_directory: a valid Bundle or a stated skip.

The corpus (tests/dicom_files.py) is pydicom's 176 bundled test files (the seed converted 133 of them and
crashed on 30) and pydicom-data's 68. Here no file may raise; each either yields a Bundle that validates as an
R4B transaction Bundle with at least one ImagingStudy, or is skipped with a reason. The counts, per source, are
printed at the end of the module (run with ``-s`` to see them) and go into the README.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer import ConversionReport, from_directory
from streamer.dicom.files import SKIP_DICOMDIR
from tests.dicom_files import PYDICOM_DATA_MIN, PYDICOM_MIN, CorpusFile, corpus_files
from tests.unit.library._api_helpers import resources

FILES = corpus_files()
OUTCOMES: Counter[tuple[str, str]] = Counter()  # (source, outcome)
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
UID_GRAMMAR = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def _plain_pydicom_says_convertible(path: Path) -> bool:
    """Independent check: a Part-10 file (not a DICOMDIR) with all four UIDs must convert, if the three that
    identify the instance follow the UID grammar (PS3.5 9.1: at most 64 characters, digits in components
    separated by single dots; a leading zero in a component is tolerated). No bundled file breaks the
    grammar, so the stricter check changed none of the counts."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.file_meta.get("MediaStorageSOPClassUID") == DICOMDIR_SOP_CLASS:
            return False
        uids = [str(ds.get(k, "") or "").strip(" \x00") for k in UID_KEYWORDS]
        return all(uids) and all(
            len(u) <= 64 and UID_GRAMMAR.fullmatch(u) is not None for u in uids[:3]
        )
    except Exception:  # noqa: BLE001 - anything pydicom rejects is not required to convert
        return False


def _source(file: CorpusFile) -> str:
    return "pydicom-data" if file.from_pydicom_data else "pydicom"


def test_the_file_list_is_the_full_set() -> None:
    sources = Counter(_source(f) for f in FILES)
    assert sources["pydicom"] >= PYDICOM_MIN
    assert sources["pydicom-data"] >= PYDICOM_DATA_MIN


@pytest.mark.parametrize("file", FILES, ids=[f.name for f in FILES])
async def test_file_alone_gives_a_bundle_or_a_stated_skip(file: CorpusFile) -> None:
    path = file.path
    report = ConversionReport()
    bundle = await from_directory(path, {"dicom_timezone": "Europe/Berlin"}, report=report)
    assert isinstance(bundle, Bundle)
    data: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
    Bundle.model_validate(data)  # round-trips
    assert not report.failed_studies, report.failed_studies
    if report.studies:
        assert report.studies == 1 and report.files_read == 1
        assert bundle.type == "transaction"
        assert len(resources(data, "ImagingStudy")) == 1
        assert len(resources(data, "Patient")) == 1
        OUTCOMES[_source(file), "converted"] += 1
    else:
        assert not bundle.entry
        reasons = list(report.skipped_files)
        assert len(reasons) == 1 and report.skipped_file_count == 1, report.skipped_files
        assert reasons[0].strip()
        assert not _plain_pydicom_says_convertible(path), f"should have converted: {reasons[0]}"
        OUTCOMES[_source(file), f"skipped: {reasons[0]}"] += 1
    if path.name.upper() == "DICOMDIR":
        assert report.skipped_files == {SKIP_DICOMDIR: 1}


def test_print_sweep_counts() -> None:
    """Runs after the parametrized test (file order); prints the counts for the README."""
    if sum(OUTCOMES.values()) != len(FILES):
        pytest.skip("run the whole module to get the counts")
    for source in ("pydicom", "pydicom-data"):
        mine = {o: n for (s, o), n in OUTCOMES.items() if s == source}
        print(f"\n{source} test files: {sum(mine.values())}")
        for outcome, n in sorted(mine.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"  {n:4d}  {outcome}")
    assert OUTCOMES["pydicom", "converted"] >= 148  # the seed: 133 converted, 30 crashed
    assert OUTCOMES["pydicom-data", "converted"] >= 60
