"""Library API: DICOM JSON dicts or DICOM files -> FHIR R4B transaction Bundles (drop-in for dicom2fhir).

The seed library's two coroutines keep their names and call shape::

    bundle = await from_generator(instances, config)   # async iterable *or* plain iterable of DICOM JSON dicts
    bundle = await from_directory(path, config)        # a directory (recursive) or a single file

Both return one validated ``fhir.resources.R4B.bundle.Bundle`` (a pydantic model, as the seed did) holding every
study of the input: each study has its own ImagingStudy, nothing is merged across studies, and a Patient shared by
several studies appears once. The model is built from the already validated Bundle dict without validating it a
second time (:mod:`streamer.fhir.model`; the same model tree ``Bundle.model_validate`` gives). When the JSON is
what you need, :func:`from_generator_json` / :func:`from_directory_json` return that same Bundle as compact JSON
bytes (orjson) without building the model at all -- several times faster than ``bundle.model_dump_json()``,
whose cost is fhir.resources' recursive serializer (same content; key order as built). To get one Bundle per
study, iterate::

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
  mapping and validation run in a worker thread, so the event loop stays responsive; an input of at most
  ``INLINE_MAX_INSTANCES`` (16) instances, a few milliseconds of work, is mapped on the caller's thread
  instead, where the thread hop would cost more than it gains.
* An input without any usable instance gives an empty transaction Bundle (no ``entry``), not an exception.

No patient data is logged: log records carry counts and reason categories only (never values, names or file
paths; the paths of skipped files are in ``report.skipped``). ``id_function`` is called from a worker thread (or, for
small inputs, the caller's thread).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from streamer.fhir import BundleResult
from streamer.fhir.model import model_from_validated
from streamer.library.collect import (
    Collected,
    InstanceSource,
    StrPath,
    collect_files,
    collect_instances,
    roots,
)
from streamer.library.config import LibraryConfig, parse_config
from streamer.library.mapping import combined_bundle, combined_json, iter_results, off_loop
from streamer.library.report import ConversionReport

__all__ = [
    "convert_directory",
    "convert_instances",
    "from_directory",
    "from_directory_json",
    "from_generator",
    "from_generator_json",
    "iter_bundles_from_directory",
    "iter_bundles_from_generator",
    "iter_results_from_directory",
    "iter_results_from_generator",
]


async def from_generator(
    instances: InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> Bundle:
    """All studies of ``instances`` as one validated R4B transaction :class:`Bundle` (seed-compatible).

    For JSON output, :func:`from_generator_json` gives the same Bundle as bytes, much faster than
    ``model_dump_json()`` on the result.

    Args:
        instances: an async iterable (e.g. an async generator) or a plain iterable (list, generator) of DICOM
            JSON dicts or ``pydicom.Dataset`` objects.
        config: the seed's config dict (see :mod:`streamer.library.config`); never mutated.
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
    collected = await collect_instances(instances, rep)
    return await off_loop(collected.count(), combined_bundle, collected, cfg.mapping, rep)


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
    collected = await _collect_path(path, cfg, rep)
    return await off_loop(collected.count(), combined_bundle, collected, cfg.mapping, rep)


async def from_generator_json(
    instances: InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> bytes:
    """The Bundle :func:`from_generator` returns, as compact JSON bytes (orjson), no pydantic model built.

    Same arguments, validation and errors as :func:`from_generator`; the bytes parse to the same JSON as
    ``(await from_generator(...)).model_dump_json()`` (keys in the order they were built).
    """
    cfg = parse_config(config)
    rep = report if report is not None else ConversionReport()
    collected = await collect_instances(instances, rep)
    return await off_loop(collected.count(), combined_json, collected, cfg.mapping, rep)


async def from_directory_json(
    path: StrPath | InstanceSource,
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> bytes:
    """The Bundle :func:`from_directory` returns, as compact JSON bytes (orjson), no pydantic model built."""
    cfg = parse_config(config)
    rep = report if report is not None else ConversionReport()
    collected = await _collect_path(path, cfg, rep)
    return await off_loop(collected.count(), combined_json, collected, cfg.mapping, rep)


async def _collect_path(
    path: StrPath | InstanceSource, cfg: LibraryConfig, rep: ConversionReport
) -> Collected:
    """A path's files (a directory recursively, or one file), or an iterable of instances as the seed took."""
    if isinstance(path, str | os.PathLike):
        return await collect_files([Path(path)], cfg, rep)
    return await collect_instances(path, rep)


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
        yield await off_loop(result.instance_count, model_from_validated, result.bundle)


async def iter_bundles_from_directory(
    path: StrPath | Sequence[StrPath],
    config: Mapping[str, Any] | None = None,
    *,
    report: ConversionReport | None = None,
) -> AsyncIterator[Bundle]:
    """Yield one validated R4B transaction :class:`Bundle` per study found under ``path`` (dirs or files)."""
    async for result in iter_results_from_directory(path, config, report=report):
        yield await off_loop(result.instance_count, model_from_validated, result.bundle)


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
    collected = await collect_instances(instances, rep)
    async for result in iter_results(collected, cfg.mapping, rep):
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
    collected = await collect_files(roots(path), cfg, rep)
    async for result in iter_results(collected, cfg.mapping, rep):
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
