"""Golden Bundles: the complete output for fixed inputs, checked by hand against the DICOM data and the HL7
ImagingStudy mapping when they were written (``tests/unit/fhir/golden/*.json``).

Any change of the output shows up here as a diff. After an intended change, regenerate with
``STREAMER_REGEN_GOLDEN=1 pytest tests/unit/fhir/test_fhir_golden.py`` and review the diff by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from streamer.fhir import build_study_bundle
from tests.unit.fhir._fhir_cases import CASES

GOLDEN = Path(__file__).with_name("golden")


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_bundle(name: str) -> None:
    make, options = CASES[name]
    result = build_study_bundle(make(), options)
    got = {"warnings": list(result.warnings), "bundle": result.bundle}
    path = GOLDEN / f"{name}.json"
    if os.environ.get("STREAMER_REGEN_GOLDEN") == "1":
        path.write_bytes(orjson.dumps(got, option=orjson.OPT_INDENT_2) + b"\n")
    expected = orjson.loads(path.read_bytes())
    assert got == expected
