"""The keyword view of an instance that an ``id_function`` receives (``DatasetView``)."""

from __future__ import annotations

import pytest

from streamer.fhir.instance import DatasetView
from tests.unit.fhir._fhir_helpers import STUDY, inst


def test_dataset_view_keyword_access() -> None:
    view = DatasetView(
        inst(1, PatientName="Doe^John", SoftwareVersions=("V1", "V2"), PatientID=None)
    )
    assert view.StudyInstanceUID == STUDY
    assert view.PatientName == "Doe^John"
    assert view.SoftwareVersions == ["V1", "V2"]
    assert view.PatientID == ""
    assert not view.non_empty("PatientID")
    assert view.non_empty("StudyInstanceUID")
    assert "StudyInstanceUID" in view
    assert view.get("AccessionNumber", "x") == "x"
    with pytest.raises(AttributeError, match="AccessionNumber"):
        _ = view.AccessionNumber


def test_dataset_view_unknown_keyword_is_absent() -> None:
    view = DatasetView(inst(1))
    assert "NotADicomKeyword" not in view
    assert view.get("NotADicomKeyword") is None
