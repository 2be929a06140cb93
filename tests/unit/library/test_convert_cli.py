"""`python -m streamer convert` (streamer.cli.convert.main) end to end on a temp dir."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pydicom
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


# ---- the STREAMER_* mapping settings --------------------------------------------------------

# Each mapping variable, a value, and the flags that choose the same.
MAPPING = {
    "STREAMER_DICOM_TIMEZONE": ("Europe/Berlin", ["--timezone", "Europe/Berlin"]),
    "STREAMER_ADD_INSTANCES": ("true", ["--add-instances"]),
    "STREAMER_ADD_VITAL_SIGNS": ("false", ["--no-vital-signs"]),
    "STREAMER_PROFILE": ("mii", ["--profile", "mii"]),
    "STREAMER_WADO_BASE_URL": (
        "https://pacs.example/dicomweb",
        ["--wado-base-url", "https://pacs.example/dicomweb"],
    ),
}
MAPPING_FLAGS = [flag for _, flags in MAPPING.values() for flag in flags]


@pytest.fixture
def naive_dir(in_dir: Path) -> Path:
    """``in_dir`` with CT_small's TimezoneOffsetFromUTC removed, so STREAMER_DICOM_TIMEZONE matters."""
    ds = pydicom.dcmread(in_dir / "ct.dcm")
    del ds.TimezoneOffsetFromUTC
    ds.save_as(in_dir / "ct.dcm")
    return in_dir


@pytest.fixture
def no_streamer_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.upper().startswith("STREAMER_"):
            monkeypatch.delenv(key)
    return monkeypatch


def _run(root: Path, out: Path, *flags: str) -> dict[str, bytes]:
    """Convert with ``flags``; the Bundle files written, by name."""
    assert main([str(root), "-o", str(out), "-q", *flags]) == 0
    return {f.name: f.read_bytes() for f in sorted(out.glob("*.json"))}


def test_convert_reads_the_mapping_variables(
    naive_dir: Path, tmp_path: Path, no_streamer_env: pytest.MonkeyPatch
) -> None:
    defaults = _run(naive_dir, tmp_path / "defaults")
    by_flags = _run(naive_dir, tmp_path / "flags", *MAPPING_FLAGS)
    for name, (value, _) in MAPPING.items():
        no_streamer_env.setenv(name, value)
    by_env = _run(naive_dir, tmp_path / "env")
    assert by_env == by_flags  # every variable acts exactly like its flag
    assert by_env != defaults
    for data in map(orjson.loads, by_env.values()):
        (study,) = resources(data, "ImagingStudy")
        assert all("instance" in s for s in study["series"])  # STREAMER_ADD_INSTANCES
        assert not resources(data, "Observation")  # STREAMER_ADD_VITAL_SIGNS
        assert study["meta"]["profile"]  # STREAMER_PROFILE=mii
        (endpoint,) = resources(data, "Endpoint")  # STREAMER_WADO_BASE_URL
        assert endpoint["address"] == "https://pacs.example/dicomweb"


@pytest.mark.parametrize("name", MAPPING)
def test_each_mapping_variable_acts_like_its_flag(
    naive_dir: Path, tmp_path: Path, no_streamer_env: pytest.MonkeyPatch, name: str
) -> None:
    value, flags = MAPPING[name]
    defaults = _run(naive_dir, tmp_path / "defaults")
    by_flag = _run(naive_dir, tmp_path / "flag", *flags)
    no_streamer_env.setenv(name, value)
    assert by_flag != defaults  # the setting shows in the Bundles
    assert _run(naive_dir, tmp_path / "env") == by_flag


def test_convert_flags_override_the_variables(
    naive_dir: Path, tmp_path: Path, no_streamer_env: pytest.MonkeyPatch
) -> None:
    defaults = _run(naive_dir, tmp_path / "defaults")
    for name, (value, _) in MAPPING.items():
        no_streamer_env.setenv(name, value)
    overridden = _run(
        naive_dir,
        tmp_path / "overridden",
        "--timezone",
        "",
        "--no-add-instances",
        "--vital-signs",
        "--profile",
        "core",
        "--wado-base-url",
        "",
    )
    assert overridden == defaults
    # One flag changes only its own setting: the other variables still apply.
    for data in map(orjson.loads, _run(naive_dir, tmp_path / "one", "--profile", "core").values()):
        (study,) = resources(data, "ImagingStudy")
        assert "meta" not in study or "profile" not in study["meta"]
        assert all("instance" in s for s in study["series"])
        assert resources(data, "Endpoint")


def test_convert_without_variables_uses_the_defaults(
    naive_dir: Path, tmp_path: Path, no_streamer_env: pytest.MonkeyPatch
) -> None:
    for data in map(orjson.loads, _run(naive_dir, tmp_path / "out").values()):
        (study,) = resources(data, "ImagingStudy")
        assert not any("instance" in s for s in study["series"])
        assert "meta" not in study or "profile" not in study["meta"]
        assert not resources(data, "Endpoint")
    # Vital signs are on by default: CT_small has a PatientWeight.
    assert any(
        resources(orjson.loads(b), "Observation") for b in _run(naive_dir, tmp_path / "o2").values()
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("STREAMER_DICOM_TIMEZONE", "Mars/Base"),
        ("STREAMER_ADD_INSTANCES", "perhaps"),
        ("STREAMER_ADD_VITAL_SIGNS", "2"),
        ("STREAMER_PROFILE", "fancy"),
        ("STREAMER_WADO_BASE_URL", "ftp://pacs.example"),
    ],
)
def test_convert_bad_variable_exits_2_naming_it(
    naive_dir: Path,
    tmp_path: Path,
    no_streamer_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    no_streamer_env.setenv(variable, value)
    out = tmp_path / "out"
    assert main([str(naive_dir), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"streamer convert: invalid settings: {variable}: ")
    assert captured.out == ""
    assert not out.exists()  # stopped before anything was read or written


def test_convert_ignores_the_processors_other_variables(
    naive_dir: Path,
    tmp_path: Path,
    no_streamer_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Values the processor would refuse at start: none of them concerns convert.
    no_streamer_env.setenv("STREAMER_SSL_CAFILE", str(tmp_path / "missing.pem"))
    no_streamer_env.setenv("STREAMER_SESSION_TIMEOUT_MS", "soon")
    no_streamer_env.setenv("STREAMER_OUTPUT_TOPIC", "dicom.instances")
    no_streamer_env.setenv("STREAMER_PROFLE", "mii")  # a typo: named, not applied
    assert _run(naive_dir, tmp_path / "out") == _run(naive_dir, tmp_path / "plain")
    err = capsys.readouterr().err
    assert "unknown setting ignored: STREAMER_PROFLE" in err
    assert "SSL_CAFILE" not in err and "SESSION_TIMEOUT" not in err
