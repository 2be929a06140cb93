"""``streamer.dicom`` stands below the FHIR mapping: it never imports it, and identity checks and slimming
(run on every message of the stream processor) load neither pydicom nor the FHIR models."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
DICOM = REPO / "streamer" / "dicom"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(DICOM.glob("*.py")), ids=lambda p: p.name)
def test_dicom_never_imports_the_fhir_mapping(path: Path) -> None:
    fhir = {m for m in _imported_modules(path) if m.split(".")[:2] == ["streamer", "fhir"]}
    assert fhir == set()


@pytest.mark.parametrize("module", ["streamer.dicom.instance", "streamer.messages"])
def test_identity_and_slimming_load_neither_pydicom_nor_fhir(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('pydicom', 'fhir', 'streamer.fhir')))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
