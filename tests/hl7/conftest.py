"""Fixtures of the HL7 conformance tests: the Bundles to check and the validator JVM.

``hl7_validator`` skips with the reason when java/javac (or, on a cold cache, mvn and Maven Central) are
missing, except under ``CI`` where it fails: CI must never pass by silently skipping the HL7 validator (the
same policy as the broker fixture in tests/integration/conftest.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import warnings
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest

from streamer.library import ConversionReport, convert_directory
from tests.dicom_files import PYDICOM_DIR, corpus_files, pydicom_data_dir
from tests.hl7.validator import (
    Issue,
    Validator,
    ValidatorCrashed,
    ValidatorUnavailable,
    in_ci,
    shared_validator,
)

GOLDEN = Path(__file__).parents[1] / "unit" / "fhir" / "golden"
# The real files (pydicom's test files and pydicom-data's), each converted alone, and their folders, each
# converted whole (one Bundle per study).
FILES = corpus_files()
FOLDERS = {"pydicom": PYDICOM_DIR, "pydicom-data": pydicom_data_dir()}
# The library's configurations (README "Library API") the corpus is converted with.
MODES: dict[str, dict[str, Any]] = {
    "defaults": {"dicom_timezone": "Europe/Berlin"},
    "instances+wado": {
        "dicom_timezone": "Europe/Berlin",
        "generator": {"imaging_study": {"add_instances": True}},
        "wado_base_url": "https://pacs.example/dicomweb",
    },
    "mii": {"dicom_timezone": "Europe/Berlin", "profile": "mii"},
}

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a fresh event loop in a worker thread (the session's loop is left alone)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class Corpus:
    """Every Bundle to check, by label (``<group>: <what>``); groups: golden and the MODES."""

    bundles: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)

    def add(self, group: str, what: str, bundle: dict[str, Any]) -> None:
        label = f"{group}: {what}"
        self.bundles[label] = bundle
        self.groups.setdefault(group, []).append(label)


def _golden(corpus: Corpus) -> None:
    for path in sorted(GOLDEN.glob("*.json")):
        corpus.add("golden", path.stem, orjson.loads(path.read_bytes())["bundle"])


async def _real_files(corpus: Corpus) -> None:
    """Per mode: each folder whole (one Bundle per study), then each file alone."""
    for mode, config in MODES.items():
        for folder, path in FOLDERS.items():
            report: ConversionReport = await convert_directory(path, config)
            assert not report.failed_studies, (mode, folder, report.failed_studies)
            for result in report.results:
                corpus.add(mode, f"{folder} folder, study {result.study_uid}", result.bundle)
        for file in FILES:
            for result in (await convert_directory(file.path, config)).results:
                corpus.add(mode, file.name, result.bundle)


@pytest.fixture(scope="session")
def corpus() -> Corpus:
    """The golden Bundles and every Bundle the library makes from the real files in each mode."""
    c = Corpus()
    _golden(c)
    with warnings.catch_warnings():  # pydicom's complaints about its own odd test files
        warnings.simplefilter("ignore", UserWarning)
        _run(_real_files(c))
    return c


@pytest.fixture(scope="session")
def hl7_validator() -> Validator:
    """The validator JVM of the session (tests.hl7.validator.shared_validator)."""
    try:
        return shared_validator()
    except ValidatorUnavailable as e:
        message = f"HL7 validator unavailable: {e}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    except ValidatorCrashed as e:
        pytest.fail(f"HL7 validator crashed: {e}")


@pytest.fixture(scope="session")
def hl7_results(corpus: Corpus, hl7_validator: Validator) -> Mapping[str, list[Issue]]:
    """The validator's issues for every Bundle of the corpus (each distinct Bundle validated once)."""
    unique: dict[bytes, list[str]] = {}
    for label, bundle in corpus.bundles.items():
        unique.setdefault(orjson.dumps(bundle), []).append(label)
    results: dict[str, list[Issue]] = {}
    texts = list(unique)
    for text, issues in zip(texts, hl7_validator.validate_many(texts), strict=True):
        for label in unique[text]:
            results[label] = issues
    return results
