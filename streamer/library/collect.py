"""Reading the library's input into per-study groups: instances from (async) iterables, files from directories.

Instances are checked (an invalid one is skipped and counted in the report), pydicom Datasets and files are
turned into DICOM JSON, and everything is grouped by StudyInstanceUID in first-seen order.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from streamer.dicom.files import SKIP_DICOMDIR, dataset_to_json, list_files, read_file
from streamer.dicom.instance import check_instance, slim_instance
from streamer.errors import InvalidInstanceError, InvalidMessageError, PatientConflictError
from streamer.library.config import LibraryConfig
from streamer.library.report import ConversionReport, SkippedFile, warn
from streamer.messages import NO_PATIENT, PatientRef, patient_ref

logger = logging.getLogger(__name__)

StrPath = str | os.PathLike[str]
InstanceLike = Mapping[str, Any] | Dataset
InstanceSource = AsyncIterable[InstanceLike] | Iterable[InstanceLike]


def roots(paths: StrPath | Sequence[StrPath]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


@dataclass(slots=True)
class Collected:
    """Checked instances grouped by StudyInstanceUID in first-seen order.

    With ``slim``, only a copy restricted to the mapped tags is kept (for instances nobody else holds: read
    from files or produced by a generator); without, the caller's dict itself (a list the caller holds anyway).
    The stream processor's rules apply: an instance naming another patient than the study's first one is
    refused (PatientConflictError), an identical repeat of a SOPInstanceUID is ignored, and a repeat with
    other content replaces the earlier one.
    """

    slim: bool = True
    studies: dict[str, list[Mapping[str, Any]]] = field(default_factory=dict)
    _positions: dict[str, dict[str, int]] = field(default_factory=dict)  # study -> SOP -> index
    _patients: dict[str, PatientRef] = field(default_factory=dict)

    def add(
        self, instance: Mapping[str, Any], rep: ConversionReport, *, owned: bool = False
    ) -> None:
        """Check ``instance`` (InvalidInstanceError) and keep it under its study (``owned``: always slim)."""
        key = check_instance(instance)
        uid = key.study_uid
        patient = patient_ref(instance)
        first = self._patients.get(uid, NO_PATIENT)
        if patient.conflicts_with(first):
            raise PatientConflictError(
                "instance names another patient (PatientID (0010,0020) or IssuerOfPatientID "
                "(0010,0021)) than the first instance of its study"
            )
        self._patients[uid] = PatientRef(
            first.id_digest or patient.id_digest, first.issuer_digest or patient.issuer_digest
        )
        kept: Mapping[str, Any]
        if self.slim or owned:
            # Slimming drops odd elements; the mapping of the slim copy cannot see them again.
            dropped: list[str] = []
            kept = slim_instance(instance, dropped)
            for warning in dropped:
                warn(rep, warning)
        else:
            kept = instance
        group = self.studies.setdefault(uid, [])
        positions = self._positions.setdefault(uid, {})
        at = positions.get(key.sop_uid)
        if at is None:
            positions[key.sop_uid] = len(group)
            group.append(kept)
            return
        held = group[at]
        if held == kept:
            rep.duplicates += 1
            return
        # Same SOPInstanceUID, other content: the later one replaces it, as an update.
        changed = sorted(tag for tag in held.keys() | kept.keys() if held.get(tag) != kept.get(tag))
        rep.updated_instances += 1
        warn(
            rep,
            f"instance {key.sop_uid} came again with other content; the later one is kept "
            f"(changed tags: {', '.join(changed[:20])})",
        )
        group[at] = kept

    def all_instances(self) -> list[Mapping[str, Any]]:
        return [i for group in self.studies.values() for i in group]

    def count(self) -> int:
        """Instances held, all studies."""
        return sum(len(group) for group in self.studies.values())


def _accept(instance: InstanceLike, collected: Collected, rep: ConversionReport) -> None:
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
            warn(rep, "some DICOM elements could not be converted to DICOM JSON and were left out")
    elif not isinstance(instance, Mapping):
        raise TypeError(
            f"expected DICOM JSON dicts (or pydicom Datasets), got an item of type {type(instance).__name__}"
        )
    try:
        collected.add(instance, rep, owned=owned)
    except PatientConflictError:
        rep.patient_conflicts += 1
        rep.skipped_instances["patient conflict"] += 1
    except InvalidInstanceError as exc:
        rep.skipped_instances[_reason(exc)] += 1


async def collect_instances(instances: InstanceSource, rep: ConversionReport) -> Collected:
    if isinstance(instances, str | bytes | os.PathLike | Mapping | Dataset):
        raise TypeError(
            f"expected an iterable of DICOM JSON dicts, got {type(instances).__name__}"
            " (for files and directories use from_directory)"
        )
    collected = Collected(slim=not isinstance(instances, Sequence))
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


async def collect_files(roots: list[Path], cfg: LibraryConfig, rep: ConversionReport) -> Collected:
    files = await asyncio.to_thread(list_files, roots)
    collected = Collected()
    for path in files:
        outcome = await asyncio.to_thread(read_file, path)
        if isinstance(outcome, str):
            _skip_file(path, outcome, cfg, rep)
            continue
        instance, dropped = outcome
        if dropped:
            warn(
                rep,
                f"{path.name}: some DICOM elements could not be converted to DICOM JSON and were left out",
            )
        try:
            collected.add(instance, rep)
        except PatientConflictError:
            rep.patient_conflicts += 1
            _skip_file(path, "patient conflict", cfg, rep)
            continue
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
