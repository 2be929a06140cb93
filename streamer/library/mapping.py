"""Mapping the collected studies to FHIR: study by study (failed studies counted and left out) or all in one Bundle."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypeVar

from fhir.resources.R4B.bundle import Bundle

from streamer.errors import MappingError
from streamer.fhir import BundleResult, build_bundle, build_study_bundle, bundle_json
from streamer.fhir.model import model_from_validated
from streamer.fhir.options import MappingOptions
from streamer.library.collect import Collected
from streamer.library.report import ConversionReport, warn
from streamer.log import stack_without_message

logger = logging.getLogger(__name__)

# Up to this many instances, mapping (about 0.1 ms per instance) runs on the caller's thread: a worker-thread
# hop costs about as much as mapping a 5-instance study would gain from it, and the event loop is held for
# at most a few milliseconds. Larger inputs are mapped in a worker thread (heartbeats and other tasks go on).
INLINE_MAX_INSTANCES = 16

_T = TypeVar("_T")


async def off_loop(instances: int, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a worker thread, or inline for ``instances <= INLINE_MAX_INSTANCES``."""
    if instances <= INLINE_MAX_INSTANCES:
        return fn(*args)
    return await asyncio.to_thread(fn, *args)


def _map_study(
    group: list[Mapping[str, Any]],
    options: MappingOptions,
    rep: ConversionReport,
    cleaned: bool = False,
) -> BundleResult | None:
    """One study -> its BundleResult, or None (counted in ``failed_studies``) when it cannot be mapped.

    ``cleaned``: every instance was slimmed on input (``Collected.slim``), so it is not cleaned again.
    """
    try:
        return build_study_bundle(group, options, cleaned=cleaned)
    except MappingError as exc:
        reason = f"mapping error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    except Exception as exc:  # noqa: BLE001 - one study's bug must not sink the others; counted
        # The stack without the message, which may quote a value (patient data).
        logger.debug("study mapping crashed", extra={"stack": stack_without_message(exc)})
        reason = f"internal error: {type(exc).__name__}"
    logger.warning("a study (%d instances) could not be mapped: %s", len(group), reason)
    rep.failed_studies[reason] += 1
    return None


def _count(result: BundleResult, rep: ConversionReport) -> None:
    rep.studies += len(result.study_uids) or 1
    rep.series += result.series_count
    rep.instances += result.instance_count
    for warning in result.warnings:
        warn(rep, warning)


async def iter_results(
    collected: Collected, options: MappingOptions, rep: ConversionReport
) -> AsyncIterator[BundleResult]:
    """Map study by study in a worker thread; failed studies are counted and left out."""
    while collected.studies:
        # pop as we go: a mapped study's instances are not held any longer than needed
        uid = next(iter(collected.studies))
        group = collected.studies.pop(uid)
        result = await off_loop(len(group), _map_study, group, options, rep, collected.slim)
        if result is not None:
            _count(result, rep)
            yield result


def combined_result(
    collected: Collected, options: MappingOptions, rep: ConversionReport
) -> BundleResult | None:
    """Every mappable study in one validated transaction Bundle dict (None: no study at all).

    All studies are mapped together first; only when that fails is each study mapped alone, to find and leave
    out the ones that cannot be mapped. If none can, the first error is raised as a MappingError.
    """
    if not collected.studies:
        return None
    try:
        # slimmed instances (collected.slim) are not cleaned a second time
        if len(collected.studies) == 1:  # the same Bundle
            (group,) = collected.studies.values()
            result = build_study_bundle(group, options, cleaned=collected.slim)
        else:
            result = build_bundle(collected.all_instances(), options, cleaned=collected.slim)
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
        result = build_bundle(good, options, cleaned=collected.slim)
    _count(result, rep)
    return result


def combined_bundle(collected: Collected, options: MappingOptions, rep: ConversionReport) -> Bundle:
    """:func:`combined_result` as an R4B model, built from the validated dict without validating it again."""
    result = combined_result(collected, options, rep)
    return model_from_validated(result.bundle if result is not None else empty_bundle())


def combined_json(collected: Collected, options: MappingOptions, rep: ConversionReport) -> bytes:
    """:func:`combined_result` as compact JSON bytes (orjson), no pydantic model built."""
    result = combined_result(collected, options, rep)
    return bundle_json(result.bundle if result is not None else empty_bundle())


def empty_bundle() -> dict[str, Any]:
    """The answer for an input without any usable instance: a transaction Bundle with no entry."""
    bundle_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "urn:streamer:empty-transaction-bundle"))
    return {"resourceType": "Bundle", "id": bundle_id, "type": "transaction"}
