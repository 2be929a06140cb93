"""`python -m streamer convert` (streamer.cli.convert.main) end to end on a temp dir."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B.bundle import Bundle

from streamer.cli.convert import bundle_file_name, main
from tests.unit.library._api_helpers import pydicom_test_dir, resources, study_uid_of

DATA = pydicom_test_dir()


@pytest.fixture
def in_dir(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    shutil.copy(DATA / "CT_small.dcm", root / "ct.dcm")
    shutil.copy(DATA / "MR_small.dcm", root / "sub" / "mr.dcm")
    (root / "readme.txt").write_text("hello")
    shutil.copy(DATA / "dicomdirtests" / "DICOMDIR", root / "DICOMDIR")
    return root


def test_convert_writes_one_bundle_per_study(
    in_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc = main([str(in_dir), "-o", str(out), "--timezone", "Europe/Berlin", "--add-instances"])
    captured = capsys.readouterr()
    assert rc == 0
    lines = captured.out.strip().splitlines()
    assert lines[-1].startswith("studies=2 instances=2 skipped_files=2 warnings=")
    assert lines[-1].endswith(" failed_studies=0")
    files = sorted(out.glob("*.json"))
    assert len(files) == 2
    for f in files:
        data = orjson.loads(f.read_bytes())
        Bundle.model_validate(data)
        (study,) = resources(data, "ImagingStudy")
        assert f.name == bundle_file_name(study_uid_of(study)) == f"{study_uid_of(study)}.json"
        assert all("instance" in s for s in study["series"])


def test_convert_several_paths_and_options(
    in_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    rc = main(
        [
            str(in_dir / "ct.dcm"),
            str(in_dir / "sub"),
            "-o",
            str(out),
            "--no-vital-signs",
            "--profile",
            "mii",
            "--compact",
            "-v",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0
    assert (
        captured.out.strip().splitlines()[-1].startswith("studies=2 instances=2 skipped_files=0 ")
    )
    for f in out.glob("*.json"):
        data = orjson.loads(f.read_bytes())
        assert not resources(data, "Observation")
        assert b"\n  " not in f.read_bytes()


def test_convert_nothing_convertible_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a.txt").write_text("x")
    rc = main([str(tmp_path), "-o", str(tmp_path / "out")])
    assert rc == 1
    assert capsys.readouterr().out.strip() == (
        "studies=0 instances=0 skipped_files=1 warnings=0 failed_studies=0"
    )


def test_convert_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main([str(tmp_path), "--timezone", "Mars/Base"]) == 2
    assert "dicom_timezone" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--profile", "x", str(tmp_path)]) == 2


def test_convert_strict_exits_1(
    in_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(in_dir), "-o", str(tmp_path / "o"), "--strict"]) == 1
    assert "readme.txt" in capsys.readouterr().err


def test_bundle_file_name() -> None:
    assert bundle_file_name("1.2.840.1") == "1.2.840.1.json"
    for odd in ["../../etc/passwd", "", "1.2.3 ", "x" * 10, "1." + "2" * 80]:
        name = bundle_file_name(odd)
        assert name.startswith("study-") and "/" not in name and name.endswith(".json")
