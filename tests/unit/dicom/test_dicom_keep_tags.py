"""``KEEP_TAGS`` is complete: slimming keeps every tag the mapping code reads, so a study maps the same from
slim instances (what the stream processor holds) as from the full ones.

The mapping code is scanned (with ``ast``, so comments and docstrings do not count) for every ``t.<Name>``
and every string literal that looks like a tag key.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from streamer.dicom import tags as t
from streamer.dicom.instance import KEEP_TAGS, slim_instance
from streamer.fhir import MappingOptions, build_study_bundle
from tests.unit.dicom._dicom_helpers import pydicom_json

PACKAGE = Path(__file__).parents[3] / "streamer"
TABLE_FILE = PACKAGE / "dicom" / "tags.py"
SCANNED = sorted([*(PACKAGE / "fhir").rglob("*.py"), *(PACKAGE / "dicom").glob("*.py")])

TAG_LIKE = re.compile("[0-9A-Fa-f]{8}")
# 8-digit strings in the scanned code that are not DICOM tags.
NOT_TAGS = {
    "35321007",  # SNOMED CT Fluorodeoxyglucose (18F), fhir/terminology/build_tables.py
    "24028007",  # SNOMED CT Right, fhir/terminology/build_tables.py
    "51440002",  # SNOMED CT Right and left, fhir/terminology/build_tables.py
}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports_tag_table(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "streamer.dicom"
        and any(a.name == "tags" for a in node.names)
        for node in ast.walk(tree)
    )


def _tag_names_used(tree: ast.Module) -> set[str]:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "t"
    }


def _tag_literals(tree: ast.Module) -> set[str]:
    return {
        node.value.upper()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and TAG_LIKE.fullmatch(node.value)
    }


def test_the_scan_covers_the_mappers() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in SCANNED}
    assert {"fhir/patient.py", "fhir/mii/xray_ct.py", "dicom/instance.py"} <= names


def test_the_tag_table_is_imported_one_way() -> None:
    # ``from streamer.dicom import tags as t`` everywhere, so the scan below sees every use.
    for path in SCANNED:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ImportFrom) and node.module == "streamer.dicom":
                for alias in node.names:
                    if alias.name == "tags":
                        assert alias.asname == "t", path
            if isinstance(node, ast.ImportFrom):
                assert node.module != "streamer.dicom.tags", path
            if isinstance(node, ast.Import):
                assert all(a.name != "streamer.dicom.tags" for a in node.names), path


def test_every_tag_name_used_is_kept() -> None:
    used: dict[str, set[str]] = {}
    for path in SCANNED:
        tree = _tree(path)
        if _imports_tag_table(tree):
            for name in _tag_names_used(tree):
                used.setdefault(name, set()).add(path.relative_to(PACKAGE).as_posix())
    not_in_table = {n: sorted(files) for n, files in used.items() if not hasattr(t, n)}
    assert not_in_table == {}, "t.<Name> must name an entry of streamer/dicom/tags.py"
    not_kept = {n: sorted(files) for n, files in used.items() if getattr(t, n) not in KEEP_TAGS}
    assert not_kept == {}, "add these to KEEP_TAGS in streamer/dicom/instance.py"


def test_no_tag_is_written_as_a_literal() -> None:
    literals = {
        path.relative_to(PACKAGE).as_posix(): sorted(_tag_literals(_tree(path)) - NOT_TAGS)
        for path in SCANNED
        if path != TABLE_FILE
    }
    assert {f: tags for f, tags in literals.items() if tags} == {}, "use t.<Name> instead"


def test_every_kept_tag_is_read_somewhere() -> None:
    used: set[str] = set()
    for path in SCANNED:
        tree = _tree(path)
        if _imports_tag_table(tree):
            used |= {getattr(t, n) for n in _tag_names_used(tree) if hasattr(t, n)}
    assert KEEP_TAGS - used == set(), "KEEP_TAGS lists only tags the code reads"


# pydicom's own test files, one or more per modality family the mappers treat differently.
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG-lossy.dcm",  # NM
    "examples_ybr_color.dcm",  # US
    "dicomdirtests/77654033/CR1/6154",
    "liver_1frame.dcm",  # SEG, enhanced multi-frame functional groups
    "test-SR.dcm",
    "rtdose.dcm",
    "waveform_ecg.dcm",
]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("profile", ["core", "mii"])
def test_slim_and_full_give_the_same_bundle(name: str, profile: str) -> None:
    full = pydicom_json(name)
    opts = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile=profile)  # type: ignore[arg-type]
    a = build_study_bundle([full], opts)
    b = build_study_bundle([slim_instance(full)], opts)
    assert a.bundle == b.bundle
    assert a.warnings == b.warnings


# Studies of several instances from pydicom's test files (one study each).
STUDIES = {
    "three CR series": ["CR1/6154", "CR2/6247", "CR3/6278"],
    "one CT series of four": ["CT2/17106", "CT2/17136", "CT2/17166", "CT2/17196"],
}


@pytest.mark.parametrize("files", STUDIES.values(), ids=STUDIES.keys())
@pytest.mark.parametrize("profile", ["core", "mii"])
def test_slim_and_full_give_the_same_bundle_for_a_whole_study(
    files: list[str], profile: str
) -> None:
    study = [pydicom_json(f"dicomdirtests/77654033/{name}") for name in files]
    opts = MappingOptions(add_instances=True, profile=profile)  # type: ignore[arg-type]
    a = build_study_bundle(study, opts)
    b = build_study_bundle([slim_instance(ds) for ds in study], opts)
    assert a.instance_count == len(files)
    assert a.bundle == b.bundle
    assert a.warnings == b.warnings
