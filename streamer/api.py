"""Library API: DICOM JSON dicts or DICOM files -> FHIR R4B transaction Bundles (drop-in for dicom2fhir).

The seed library's two coroutines keep their names and call shape::

    bundle = await from_generator(instances, config)   # async iterable *or* plain iterable of DICOM JSON dicts
    bundle = await from_directory(path, config)        # a directory (recursive) or a single file

Both return one validated ``fhir.resources.R4B.bundle.Bundle`` (a pydantic model, as the seed did) holding every
study of the input: each study has its own ImagingStudy, nothing is merged across studies, and a Patient shared by
several studies appears once. To get one Bundle per study, iterate::

    async for bundle in iter_bundles_from_directory(path, config): ...
    async for bundle in iter_bundles_from_generator(instances, config): ...

Counts (studies, series, instances, skipped files by reason, failed studies, warnings) are collected in a
:class:`ConversionReport`: pass ``report=ConversionReport()`` to any of the above, or call
:func:`convert_instances` / :func:`convert_directory`, which return the report with the per-study Bundles as
plain dicts (``report.results``) -- the fast path, no second pydantic model is built; serialise them with
:func:`streamer.fhir.bundle_json`.

Input and file handling:

* Instances are DICOM JSON dicts (PS3.18 Annex F) or ``pydicom.Dataset`` objects. They are only read, never
  changed. An instance that lacks what every instance needs (its UIDs) is skipped and counted in
  ``report.skipped_instances`` (by reason).
* Files are read with ``pydicom.dcmread(stop_before_pixels=True)`` in a worker thread and turned into DICOM JSON
  with all binary (bulk data) elements left out. DICOMDIR files (named ``DICOMDIR`` or with Media Storage SOP
  Class 1.2.840.10008.1.3.10), non-DICOM files, unreadable files and files without a usable instance are
  skipped and counted by reason in ``report.skipped_files``; the call never fails because of one file. A file
  without the 128-byte preamble + ``DICM`` is tried as a raw dataset when it starts like one (a group 0002 or
  0008 tag). An element pydicom cannot turn into JSON is dropped with a warning instead of losing the file.
  With the config key ``directory_parser.skip_invalid_files = False`` an unusable file raises
  :class:`InvalidMessageError` instead (DICOMDIR files are still skipped).
* Instances from an async or one-shot iterable, and instances read from files, are kept slimmed to the tags the
  mapping reads; the dicts of a list or tuple are used as they are (the caller holds them anyway).
* A study the mapper cannot turn into a valid Bundle (:class:`MappingError`, rare) is left out and counted in
  ``report.failed_studies``; the other studies still come out. Only when there were studies and none of them
  could be mapped do ``from_generator`` / ``from_directory`` raise the MappingError.
* Input is gathered before mapping (instances of one study may arrive anywhere in the input). The CPU-bound
  mapping and validation run in a worker thread, so the event loop stays responsive.
* An input without any usable instance gives an empty transaction Bundle (no ``entry``), not an exception.

No patient data is logged: log records carry counts and reason categories only (never values, names or file
paths; the paths of skipped files are in ``report.skipped``). ``id_function`` is called from a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from pydicom.dataset import Dataset

from streamer.dicom.files import SKIP_DICOMDIR, dataset_to_json, list_files, read_file
from streamer.dicom.instance import check_instance, slim_instance
from streamer.errors import InvalidInstanceError, InvalidMessageError, MappingError
from streamer.fhir import BundleResult, build_bundle, build_study_bundle
from streamer.fhir.options import MappingOptions
from streamer.library_config import LibraryConfig, parse_config

__all__ = [
    "ConversionReport",
    "SkippedFile",
    "convert_directory",
    "convert_instances",
    "from_directory",
    "from_generator",
    "iter_bundles_from_directory",
    "iter_bundles_from_generator",
    "iter_results_from_directory",
    "iter_results_from_generator",
]

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]
InstanceLike = Mapping[str, Any] | Dataset
InstanceSource = AsyncIterable[InstanceLike] | Iterable[InstanceLike]


# --- report -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SkippedFile:
    """One file left out of a conversion, and why."""

    path: str
    reason: str


@dataclass(slots=True)
class ConversionReport:
    """What a conversion did. Pass one in as ``report=`` or get one from ``convert_*``.

    ``results`` holds one :class:`BundleResult` per converted study (only filled by ``convert_instances`` /
    ``convert_directory``; the Bundle-returning functions do not keep the dicts).
    """

    studies: int = 0
    series: int = 0
    instances: int = 0
    files_read: int = 0  # files that gave a DICOM JSON instance
    skipped_files: Counter[str] = field(default_factory=Counter)  # reason -> count
    skipped_instances: Counter[str] = field(default_factory=Counter)  # reason -> count
    failed_studies: Counter[str] = field(default_factory=Counter)  # reason -> count
    warnings: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    results: list[BundleResult] = field(default_factory=list)

    @property
    def skipped_file_count(self) -> int:
        """How many files were skipped (all reasons)."""
        return sum(self.skipped_files.values())

    @property
    def failed_study_count(self) -> int:
        """How many studies could not be mapped."""
        return sum(self.failed_studies.values())

    def summary_line(self) -> str:
        """One line, ``key=value`` pairs: studies, instances, skipped_files, warnings, failed_studies."""
        return (
            f"studies={self.studies} instances={self.instances} "
            f"skipped_files={self.skipped_file_count} warnings={len(self.warnings)} "
            f"failed_studies={self.failed_study_count}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The counts as a JSON-friendly dict (no Bundles, no file paths)."""
        return {
            "studies": self.studies,
            "series": self.series,
            "instances": self.instances,
            "files_read": self.files_read,
            "skipped_files": dict(self.skipped_files),
            "skipped_instances": dict(self.skipped_instances),
            "failed_studies": dict(self.failed_studies),
            "warnings": len(self.warnings),
        }


# --- public coroutines --------------------------------------------------------------------------------


async def from_generator(
    instances: InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> Bundle:
    """All studies of ``instances`` as one validated R4B transaction :class:`Bundle` (seed-compatible).

    Args:
        instances: an async iterable (e.g. an async generator) or a plain iterable (list, generator) of DICOM
            JSON dicts or ``pydicom.Dataset`` objects.
        config: the seed's config dict (see :mod:`streamer.library_config`); never mutated.
        report: filled with the counts when given.

    Returns:
        One transaction Bundle: every study its own ImagingStudy, a Patient shared by studies once. No usable
        instance at all gives an empty transaction Bundle.

    Raises:
        ConfigError: a wrong config key or value (before any input is read).
        TypeError: ``instances`` is not an iterable of dicts (e.g. a path: use :func:`from_directory`).
        MappingError: there were studies but none of them could be mapped (when only some fail, they are
            left out and counted in ``report.failed_studies``).
    """
    cfg = parse_config(config)
    rep = report if report is not None else ConversionReport()
    collected = await _collect_instances(instances, rep)
    return await asyncio.to_thread(_combined_bundle, collected, cfg.mapping, rep)


async def from_directory(
    path: StrPath | InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> Bundle:
    """All studies found under ``path`` as one validated R4B transaction :class:`Bundle` (seed-compatible).

    Args:
        path: a directory (searched recursively, symlinked directories not followed) or a single file. As in
            the seed, an iterable of DICOM JSON dicts is also accepted (and handled like :func:`from_generator`).
        config: the seed's config dict; ``directory_parser.skip_invalid_files`` applies here.
        report: filled with the counts (skipped files by reason, ...) when given.

    Raises:
        ConfigError: a wrong config key or value.
        FileNotFoundError: ``path`` does not exist.
        InvalidMessageError: only with ``skip_invalid_files = False``, for the first unusable file.
        MappingError: there were studies but none of them could be mapped.
    """
    cfg = parse_config(config)
    rep = report if report is not None else ConversionReport()
    if isinstance(path, str | os.PathLike):
        collected = await _collect_files([Path(path)], cfg, rep)
    else:
        collected = await _collect_instances(path, rep)
    return await asyncio.to_thread(_combined_bundle, collected, cfg.mapping, rep)


async def iter_bundles_from_generator(
    instances: InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> AsyncIterator[Bundle]:
    """Yield one validated R4B transaction :class:`Bundle` per study of ``instances`` (first-seen order).

    Each Bundle holds that study's ImagingStudy, Patient, Device(s), Endpoint and Observations. A study that
    cannot be mapped is skipped and counted in ``report.failed_studies``. The whole input is read before the
    first Bundle (instances of one study may come anywhere in it).
    """
    async for result in iter_results_from_generator(instances, config, report=report):
        yield await asyncio.to_thread(Bundle.model_validate, result.bundle)


async def iter_bundles_from_directory(
    path: StrPath | Sequence[StrPath],
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> AsyncIterator[Bundle]:
    """Yield one validated R4B transaction :class:`Bundle` per study found under ``path`` (dirs or files)."""
    async for result in iter_results_from_directory(path, config, report=report):
        yield await asyncio.to_thread(Bundle.model_validate, result.bundle)


async def iter_results_from_generator(
    instances: InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> AsyncIterator[BundleResult]:
    """Like :func:`iter_bundles_from_generator`, but yield :class:`BundleResult` (validated Bundle *dicts*).

    The fast path: no pydantic model is built; ``streamer.fhir.bundle_json(result)`` gives the JSON bytes.
    """
    cfg = parse_config(config)
    rep = report if report is not None else ConversionReport()
    collected = await _collect_instances(instances, rep)
    async for result in _iter_results(collected, cfg.mapping, rep):
        yield result


async def iter_results_from_directory(
    path: StrPath | Sequence[StrPath],
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> AsyncIterator[BundleResult]:
    """Like :func:`iter_bundles_from_directory`, but yield :class:`BundleResult` (validated Bundle dicts)."""
    cfg = parse_config(config)
    rep = report if report is not None else ConversionReport()
    collected = await _collect_files(_roots(path), cfg, rep)
    async for result in _iter_results(collected, cfg.mapping, rep):
        yield result


async def convert_instances(
    instances: InstanceSource, config: Mapping[str, Any] | None = None
) -> ConversionReport:
    """Map ``instances`` study by study; the report's ``results`` hold one BundleResult (dict) per study."""
    rep = ConversionReport()
    async for result in iter_results_from_generator(instances, config, report=rep):
        rep.results.append(result)
    return rep


async def convert_directory(
    paths: StrPath | Sequence[StrPath], config: Mapping[str, Any] | None = None
) -> ConversionReport:
    """Read every file under ``paths`` (directories recursively, or single files) and map it study by study.

    The report's ``results`` hold one :class:`BundleResult` (a validated Bundle dict) per study.
    """
    rep = ConversionReport()
    async for result in iter_results_from_directory(paths, config, report=rep):
        rep.results.append(result)
    return rep


def _roots(paths: StrPath | Sequence[StrPath]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


# --- collecting instances -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Collected:
    """Checked instances grouped by StudyInstanceUID in first-seen order.

    With ``slim``, only a copy restricted to the mapped tags is kept (for instances nobody else holds: read
    from files or produced by a generator); without, the caller's dict itself (a list the caller holds anyway).
    """

    slim: bool = True
    studies: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)

    def add(self, instance: Mapping[str, Any], *, owned: bool = False) -> None:
        """Check ``instance`` (InvalidInstanceError) and keep it under its study (``owned``: always slim)."""
        key = check_instance(instance)
        self.studies.setdefault(key.study_uid, []).append(
            slim_instance(instance) if self.slim or owned else instance
        )

    def all_instances(self) -> list[Mapping[str, Any]]:
        return [i for group in self.studies.values() for i in group]


def _accept(instance: InstanceLike, collected: _Collected, rep: ConversionReport) -> None:
    """Check one instance and add it; an invalid one is counted in ``rep.skipped_instances``."""
    owned = False
    if isinstance(instance, Dataset):
        converted = dataset_to_json(instance)
        if isinstance(converted, str):
            rep.skipped_instances[converted] += 1
            return
        instance, dropped = converted
        owned = True
        if dropped:
            rep.warnings.append(
                "some DICOM elements could not be converted to DICOM JSON and were left out"
            )
    elif not isinstance(instance, Mapping):
        raise TypeError(
            f"expected DICOM JSON dicts (or pydicom Datasets), got an item of type {type(instance).__name__}"
        )
    try:
        collected.add(instance, owned=owned)
    except InvalidInstanceError as exc:
        rep.skipped_instances[_reason(exc)] += 1


async def _collect_instances(instances: InstanceSource, rep: ConversionReport) -> _Collected:
    if isinstance(instances, str | bytes | os.PathLike | Mapping | Dataset):
        raise TypeError(
            f"expected an iterable of DICOM JSON dicts, got {type(instances).__name__}"
            " (for files and directories use from_directory)"
        )
    collected = _Collected(slim=not isinstance(instances, Sequence))
    if isinstance(instances, AsyncIterable):
        async for instance in instances:
            _accept(instance, collected, rep)
    elif isinstance(instances, Iterable):
        for instance in instances:
            _accept(instance, collected, rep)
    else:
        raise TypeError(
            f"expected an async iterable or an iterable of DICOM JSON dicts, got {type(instances).__name__}"
        )
    if rep.skipped_instances:
        logger.warning("instances skipped: %s", dict(rep.skipped_instances))
    return collected


async def _collect_files(
    roots: list[Path], cfg: LibraryConfig, rep: ConversionReport
) -> _Collected:
    files = await asyncio.to_thread(list_files, roots)
    collected = _Collected()
    for path in files:
        outcome = await asyncio.to_thread(read_file, path)
        if isinstance(outcome, str):
            _skip_file(path, outcome, cfg, rep)
            continue
        instance, dropped = outcome
        if dropped:
            rep.warnings.append(
                f"{path.name}: some DICOM elements could not be converted to DICOM JSON and were left out"
            )
        try:
            collected.add(instance)
        except InvalidInstanceError as exc:
            _skip_file(path, _reason(exc), cfg, rep)
            continue
        rep.files_read += 1
    if rep.skipped_files:
        logger.info("files skipped: %s", dict(rep.skipped_files))
    return collected


def _skip_file(path: Path, reason: str, cfg: LibraryConfig, rep: ConversionReport) -> None:
    if not cfg.skip_invalid_files and reason != SKIP_DICOMDIR:
        raise InvalidMessageError(f"{path}: {reason}")
    logger.debug("skipping a file: %s", reason)
    rep.skipped_files[reason] += 1
    rep.skipped.append(SkippedFile(str(path), reason))


def _reason(exc: InvalidInstanceError) -> str:
    """A short category for an invalid instance: the error's first line (it names the element, not a value)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"invalid instance: {text}"


# --- mapping ------------------------------------------------------------------------------------------


def _map_study(
    group: list[Mapping[str, Any]], options: MappingOptions, rep: ConversionReport
) -> BundleResult | None:
    """One study -> its BundleResult, or None (counted in ``failed_studies``) when it cannot be mapped."""
    try:
        return build_study_bundle(group, options)
    except MappingError as exc:
        reason = f"mapping error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    except Exception as exc:  # one study's bug must not sink the others; counted, not hidden
        logger.debug("study mapping crashed", exc_info=True)
        reason = f"internal error: {type(exc).__name__}"
    logger.warning("a study (%d instances) could not be mapped: %s", len(group), reason)
    rep.failed_studies[reason] += 1
    return None


def _count(result: BundleResult, rep: ConversionReport) -> None:
    rep.studies += len(result.study_uids) or 1
    rep.series += result.series_count
    rep.instances += result.instance_count
    rep.warnings.extend(result.warnings)


async def _iter_results(
    collected: _Collected, options: MappingOptions, rep: ConversionReport
) -> AsyncIterator[BundleResult]:
    """Map study by study in a worker thread; failed studies are counted and left out."""
    while collected.studies:
        # pop as we go: a mapped study's instances are not held any longer than needed
        uid = next(iter(collected.studies))
        group = collected.studies.pop(uid)
        result = await asyncio.to_thread(_map_study, group, options, rep)
        if result is not None:
            _count(result, rep)
            yield result


def _combined_bundle(
    collected: _Collected, options: MappingOptions, rep: ConversionReport
) -> Bundle:
    """Every mappable study in one transaction Bundle, validated as an R4B model.

    All studies are mapped together first; only when that fails is each study mapped alone, to find and leave
    out the ones that cannot be mapped. If none can, the first error is raised as a MappingError.
    """
    if not collected.studies:
        return _empty_bundle()
    try:
        result = build_bundle(collected.all_instances(), options)
    except Exception as first:  # find the failing studies one by one below
        good = [
            instance
            for group in collected.studies.values()
            if _map_study(group, options, rep) is not None
            for instance in group
        ]
        if not good:
            if isinstance(first, MappingError):
                raise
            raise MappingError(
                f"no study could be mapped ({type(first).__name__}); see report.failed_studies"
            ) from first
        result = build_bundle(good, options)
    _count(result, rep)
    return Bundle.model_validate(result.bundle)


def _empty_bundle() -> Bundle:
    """The answer for an input without any usable instance: a transaction Bundle with no entry."""
    bundle_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:streamer:empty-transaction-bundle"))
    return Bundle.model_validate({"resourceType": "Bundle", "id": bundle_id, "type": "transaction"})
