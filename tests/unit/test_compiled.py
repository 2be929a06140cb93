"""The conversion core runs compiled (setup.py, mypyc) unless built with STREAMER_PURE_PYTHON=1."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from setup import compiled_sources
from streamer.compiled import extensions, stale_sources

ROOT = Path(__file__).resolve().parents[2]


def _listed_modules() -> list[str]:
    return [
        p.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for p in compiled_sources()
    ]


def test_the_listed_modules_run_compiled_unless_built_pure() -> None:
    listed = _listed_modules()
    assert "streamer.fhir.imaging_study" in listed and "streamer.dicom.cleaning" in listed
    files = {name: str(importlib.import_module(name).__file__) for name in listed}
    compiled = sorted(n for n, f in files.items() if f.endswith(tuple(EXTENSION_SUFFIXES)))
    if os.environ.get("STREAMER_PURE_PYTHON") == "1":
        assert compiled == []
    else:
        assert compiled == sorted(listed), (
            "not compiled: run `make compile` (needs a C compiler), or set STREAMER_PURE_PYTHON=1 "
            "to test a pure build"
        )


def test_the_package_imports_from_any_working_directory(tmp_path: Path) -> None:
    # The compiled modules load the shared library streamer__mypyc, beside the package: the editable
    # install must put the checkout on the import path, not only the package (`make setup`).
    code = "import streamer.fhir.imaging_study as m; print(m.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).parent == ROOT / "streamer" / "fhir"


def test_an_edited_source_makes_its_extension_stale(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    suffix = EXTENSION_SUFFIXES[0]
    pairs = [
        (package / "a.py", package / f"a{suffix}"),
        (package / "sub" / "b.py", package / "sub" / f"b{suffix}"),
    ]
    for source, ext in pairs:
        source.write_text("x = 1\n")
        ext.write_bytes(b"")
        os.utime(source, (1_000, 1_000))
        os.utime(ext, (2_000, 2_000))
    (package / f"pkg__mypyc{suffix}").write_bytes(b"")  # the shared library: no source, never stale
    assert extensions(package) == {ext: src for src, ext in pairs}
    assert stale_sources(package) == []
    os.utime(pairs[1][0], (3_000, 3_000))
    assert stale_sources(package) == [str(Path("pkg") / "sub" / "b.py")]
