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
import zipfile
from pathlib import Path
from typing import Any

import pytest

from setup import compiled_sources

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).parents[2]


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


# The wheel installed alone ahead of everything else on sys.path converts studies with its own modules;
# the digest of the Bundles' bytes lets the two builds be compared.
_CONVERT = """
import hashlib, json, warnings
from pydicom import dcmread
import streamer.fhir.imaging_study as mapping
from streamer.dicom.instance import check_instance
from streamer.errors import StreamerError
from streamer.fhir import MappingOptions, build_study_bundle, bundle_json
from tests.dicom_files import corpus_files
studies = {}
warnings.simplefilter("ignore")
for file in corpus_files():  # pydicom's and pydicom-data's files, grouped by study
    try:
        data = dcmread(file.path, stop_before_pixels=True).to_json_dict(suppress_invalid_tags=True)
        studies.setdefault(check_instance(data).study_uid, []).append(data)
    except Exception:
        continue
digest = hashlib.sha256()
for profile in ("core", "mii"):
    for study in studies.values():
        options = MappingOptions(add_instances=True, add_vital_signs=True, profile=profile)
        try:
            digest.update(bundle_json(build_study_bundle(study, options)))
        except StreamerError as exc:  # the same failures, with the same reasons
            digest.update(f"{type(exc).__name__}: {exc}".encode())
print(json.dumps({"file": mapping.__file__, "studies": len(studies), "digest": digest.hexdigest()}))
"""


def _convert_with(wheel: Path, tmp_path: Path) -> dict[str, Any]:
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
    # PYTHONPATH comes before the venv's path to the working tree (tests/ is found there)
    done = subprocess.run(
        [sys.executable, "-c", _CONVERT],
        env={**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{REPO}"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    out: dict[str, Any] = json.loads(done.stdout)
    assert Path(out["file"]).parent == site / "streamer" / "fhir"
    return out


def test_compiled_and_pure_wheels_give_the_same_bundles(tmp_path: Path) -> None:
    compiled = _wheel(tmp_path / "compiled")
    names = set(zipfile.ZipFile(compiled).namelist())
    for source in compiled_sources():
        assert source in names  # the reference source ships beside its extension
        stem = source.removesuffix(".py")
        assert any(n.startswith(stem + ".") and n.endswith(".so") for n in names), source
    assert any(n.startswith("streamer__mypyc.") for n in names)
    pure = _wheel(tmp_path / "pure", STREAMER_PURE_PYTHON="1")
    assert pure.name.endswith("-py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(pure).namelist() if n.endswith(".so")]
    from_compiled = _convert_with(compiled, tmp_path / "compiled")
    from_pure = _convert_with(pure, tmp_path / "pure")
    assert from_compiled["file"].endswith(".so") and from_pure["file"].endswith("imaging_study.py")
    assert from_compiled["studies"] == from_pure["studies"] >= 30
    assert from_compiled["digest"] == from_pure["digest"]
