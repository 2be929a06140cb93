"""What `pip install .` gives a user: a wheel with the compiled core, or a pure one on request.

Built from a copy of the sources without any locally built extension, in pip's isolated build
environment (setup.py's build requirements come from the package index), as a user's install would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).parents[2]


def _listed() -> list[str]:
    with (REPO / "pyproject.toml").open("rb") as f:
        paths: list[str] = tomllib.load(f)["tool"]["streamer"]["compiled"]
    return paths


def _wheel(tmp_path: Path, **env: str) -> Path:
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("*.so", "__pycache__")
    shutil.copytree(REPO / "streamer", src / "streamer", ignore=ignore)
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, src / name)
    out = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(src),
        ],
        env={**os.environ, **env},
        check=True,
        timeout=900,
    )
    (wheel,) = out.glob("streamer-*.whl")
    return wheel


# The wheel installed alone ahead of everything else on sys.path converts a study with its own modules.
_CONVERT = """
import json, sys
import streamer.fhir.imaging_study as mapping
from streamer.fhir import MappingOptions, build_study_bundle
from tests.dicom_factory import make_instance, study_uid
result = build_study_bundle([make_instance(study_uid(1))], MappingOptions())
print(json.dumps({"file": mapping.__file__, "first": result.bundle["entry"][0]["resource"]["resourceType"]}))
"""


def _convert_with(wheel: Path, tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    # PYTHONPATH comes before the venv's editable path to the working tree; tests/ is found from cwd
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT],
        env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out: dict[str, str] = json.loads(done.stdout)
    assert Path(out["file"]).parent == site / "streamer" / "fhir"
    assert out["first"] == "ImagingStudy"
    return out


def test_the_wheel_carries_the_compiled_core(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for source in _listed():
        assert source in names  # the reference source ships beside its extension
        stem = source.removesuffix(".py")
        assert any(n.startswith(stem + ".") and n.endswith(".so") for n in names), source
    assert any(n.startswith("streamer__mypyc.") for n in names)
    assert _convert_with(wheel, tmp_path)["file"].endswith(".so")


def test_a_pure_build_has_no_extensions(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path, STREAMER_PURE_PYTHON="1")
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".so")]
    assert _convert_with(wheel, tmp_path)["file"].endswith("imaging_study.py")
