"""The real DICOM files the corpus tests sweep: pydicom's bundled test files and pydicom-data's.

One list for every sweep (the library's, the mapping's, the HL7 lane's). pydicom's own files are named by their
path under its ``test_files`` folder (``CT_small.dcm``, ``dicomdirtests/DICOMDIR``), pydicom-data's (the dev
dependency ``pydicom-data``, module ``data_store``) as ``pydicom-data/<file>``. Both folders are listed
directly: ``pydicom.data.get_testdata_files()`` also finds pydicom-data, but only when it is installed and its
hashes match, and it tries downloads otherwise, so its count depends on the machine. A missing pydicom-data
raises here instead of shrinking the corpus.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pydicom.data

PYDICOM_DIR = Path(pydicom.data.__file__).parent / "test_files"
# Lower bounds, so a broken install cannot pass with fewer files (pydicom 3.0: 176, pydicom-data 1.0.0: 68).
PYDICOM_MIN = 176
PYDICOM_DATA_MIN = 60
PYDICOM_DATA_PREFIX = "pydicom-data/"


@dataclass(frozen=True, slots=True)
class CorpusFile:
    """One file of the corpus and its stable name (test ids, labels)."""

    path: Path
    name: str

    @property
    def from_pydicom_data(self) -> bool:
        return self.name.startswith(PYDICOM_DATA_PREFIX)


def pydicom_data_dir() -> Path:
    """The folder of pydicom-data's files; raises when the package is missing."""
    spec = importlib.util.find_spec("data_store")  # pydicom-data's module
    if spec is None or spec.origin is None:
        raise RuntimeError(
            "pydicom-data is not installed (a dev dependency: pip install -e '.[dev]'); "
            "the corpus tests need its files"
        )
    return Path(spec.origin).parent / "data"


@functools.cache
def corpus_files() -> tuple[CorpusFile, ...]:
    """pydicom's test files (every file but Python sources), then pydicom-data's ``*.dcm``, each sorted."""
    own = sorted(p for p in PYDICOM_DIR.rglob("*") if p.is_file() and p.suffix != ".py")
    extra = sorted(pydicom_data_dir().glob("*.dcm"))
    if len(own) < PYDICOM_MIN or len(extra) < PYDICOM_DATA_MIN:
        raise RuntimeError(
            f"corpus too small: {len(own)} pydicom test files (>= {PYDICOM_MIN} expected), "
            f"{len(extra)} pydicom-data files (>= {PYDICOM_DATA_MIN} expected)"
        )
    return (
        *(CorpusFile(p, p.relative_to(PYDICOM_DIR).as_posix()) for p in own),
        *(CorpusFile(p, PYDICOM_DATA_PREFIX + p.name) for p in extra),
    )
