"""``files.read_file`` reads only the kept tags, and that changes no slim instance, warning or Bundle.

Every corpus file is read twice: as ``read_file`` reads it now (``specific_tags``) and with every tag
(``_READ_TAGS = None``, the read before issue 12). Both reads must skip the same files for the same reason,
give the same slim instance with the same cleaning warnings, and map to the same Bundle bytes (or fail
the same way).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from streamer.dicom import files
from streamer.dicom.instance import KEEP_TAGS, slim_instance
from streamer.fhir import MappingOptions, build_study_bundle, bundle_json
from tests.dicom_files import PYDICOM_DIR, CorpusFile, corpus_files

FILES = corpus_files()
OPTIONS = (MappingOptions(), MappingOptions(profile="mii", add_instances=True))


def _full_read(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], bool] | str:
    with monkeypatch.context() as m:
        m.setattr(files, "_READ_TAGS", None)
        return files.read_file(path)


def _bundle(instance: dict[str, Any], options: MappingOptions) -> tuple[str, object]:
    try:
        result = build_study_bundle([instance], options)
    except Exception as exc:  # noqa: BLE001 - compared: both reads must fail the same way
        return "error", (type(exc).__name__, str(exc))
    return "ok", (bundle_json(result), result.warnings)


@pytest.mark.parametrize("file", FILES, ids=[f.name for f in FILES])
def test_reading_only_the_kept_tags_changes_no_bundle(
    file: CorpusFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    slim_read = files.read_file(file.path)
    full_read = _full_read(file.path, monkeypatch)
    if isinstance(full_read, str) or isinstance(slim_read, str):
        assert slim_read == full_read  # the same skip reason
        return
    slim_ds, slim_dropped = slim_read
    full_ds, full_dropped = full_read
    # elements are only left out where the full read left them out too
    assert full_dropped or not slim_dropped
    top_level_kept = {k for k in slim_ds if k in KEEP_TAGS}
    assert top_level_kept == {k for k in full_ds if k in KEEP_TAGS}
    w_slim: list[str] = []
    w_full: list[str] = []
    assert slim_instance(slim_ds, w_slim) == slim_instance(full_ds, w_full)
    assert w_slim == w_full
    for options in OPTIONS:
        assert _bundle(slim_ds, options) == _bundle(full_ds, options)


def test_the_corpus_has_files_that_map_to_bundles() -> None:
    mapped = 0
    for file in FILES:
        read = files.read_file(file.path)
        if not isinstance(read, str) and _bundle(read[0], OPTIONS[0])[0] == "ok":
            mapped += 1
    assert mapped > 150


def test_only_kept_and_detection_tags_are_read_at_the_top_level() -> None:
    read = files.read_file(PYDICOM_DIR / "CT_small.dcm")
    assert not isinstance(read, str)
    allowed = KEEP_TAGS | {"00080005", "00041220", "00080016", "00080018", "0020000D", "0020000E"}
    assert set(read[0]) <= allowed
    assert {"00100010", "0020000D", "00080060"} <= set(read[0])


def test_a_dicomdir_under_another_name_is_still_recognised(tmp_path: Path) -> None:
    copy = tmp_path / "index.dcm"
    shutil.copyfile(PYDICOM_DIR / "dicomdirtests" / "DICOMDIR", copy)
    assert files.read_file(copy) == files.SKIP_DICOMDIR
