"""One DICOM JSON instance: its identity (``check_instance``) and its slim form (``slim_instance``).

Both run on every message of the stream processor, before any FHIR mapping, so this module needs nothing but
the DICOM JSON accessors: importing it loads neither pydicom nor the FHIR models.

Both take an optional ``warnings`` list to which they append what they accepted or dropped (tag names, never
values); without it they behave the same and say nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from streamer.dicom import cleaning
from streamer.dicom import tags as t
from streamer.errors import InvalidInstanceError

# A UID (PS3.5 9.1): components of digits separated by single dots, no component with a leading zero.
_UID = re.compile(r"(?:0|[1-9][0-9]*+)(?:\.(?:0|[1-9][0-9]*+))*+")
# The same with leading zeros allowed: common in legacy archives, accepted with a warning.
_LEGACY_UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_MAX_UID = 64
_PAD = " \x00"

#: The tags a stream keeps of each instance (at every nesting level): every tag the FHIR mappers read, in the
#: core and the MII profile mode, and nothing else. A tag missing here is silently absent when a study is
#: mapped from slim instances, so ``tests/unit/dicom`` checks this set against every ``t.<Name>`` and every
#: tag literal in the mapping code.
KEEP_TAGS: Final[frozenset[str]] = frozenset(
    {
        # identity and numbering of study, series and instance
        t.SOPClassUID,
        t.SOPInstanceUID,
        t.StudyInstanceUID,
        t.SeriesInstanceUID,
        t.InstanceNumber,
        t.SeriesNumber,
        t.StudyID,
        # study, series, equipment, request (ImagingStudy, Device, Endpoint, Observation)
        t.StudyDate,
        t.StudyTime,
        t.SeriesDate,
        t.SeriesTime,
        t.AcquisitionDate,
        t.AcquisitionTime,
        t.AcquisitionDateTime,
        t.TimezoneOffsetFromUTC,
        t.AccessionNumber,
        t.IssuerOfAccessionNumberSequence,
        t.Modality,
        t.ModalitiesInStudy,
        t.ReferringPhysicianName,
        t.StudyDescription,
        t.SeriesDescription,
        t.ProcedureCodeSequence,
        t.PerformingPhysicianName,
        t.NameOfPhysiciansReadingStudy,
        t.OperatorsName,
        t.CodingSchemeIdentificationSequence,
        t.ImageType,
        t.InstitutionName,
        t.InstitutionalDepartmentName,
        t.StationName,
        t.Manufacturer,
        t.ManufacturerModelName,
        t.DeviceSerialNumber,
        t.DeviceUID,
        t.SoftwareVersions,
        t.UDISequence,
        t.UniqueDeviceIdentifier,
        t.SpatialResolution,
        t.DateOfLastCalibration,
        t.TimeOfLastCalibration,
        t.BodyPartExamined,
        t.AnatomicRegionSequence,
        t.Laterality,
        t.ImageLaterality,
        t.ContentLabel,
        t.ConceptNameCodeSequence,
        t.DocumentTitle,
        t.ReferencedRequestSequence,
        t.RequestAttributesSequence,
        t.ReasonForTheRequestedProcedure,
        t.ReasonForRequestedProcedureCodeSequence,
        t.ReasonForPerformedProcedureCodeSequence,
        t.RequestedProcedureCodeSequence,
        t.RequestedProcedureID,
        t.ScheduledProcedureStepID,
        # inside code sequence items
        t.CodeValue,
        t.CodingSchemeDesignator,
        t.CodingSchemeVersion,
        t.CodeMeaning,
        t.LongCodeValue,
        t.URNCodeValue,
        t.CodingSchemeUID,
        t.CodingSchemeURL,
        # inside issuer (hierarchic designator) items
        t.LocalNamespaceEntityID,
        t.UniversalEntityID,
        t.UniversalEntityIDType,
        t.IdentifierTypeCode,
        # patient (Patient, body weight/height Observations)
        t.PatientName,
        t.PatientID,
        t.IssuerOfPatientID,
        t.TypeOfPatientID,
        t.IssuerOfPatientIDQualifiersSequence,
        t.PatientBirthDate,
        t.PatientSex,
        t.OtherPatientIDs,
        t.OtherPatientIDsSequence,
        t.PatientSize,
        t.PatientWeight,
        t.PatientAddress,
        t.PatientMotherBirthName,
        t.CountryOfResidence,
        t.RegionOfResidence,
        t.PatientTelephoneNumbers,
        # MII profile mode: X-ray exposure, CT, projection radiography
        t.KVP,
        t.ExposureTime,
        t.ExposureTimeInuS,
        t.XRayTubeCurrent,
        t.XRayTubeCurrentInuA,
        t.Exposure,
        t.ExposureInuAs,
        t.CTDIvol,
        t.ConvolutionKernel,
        t.ViewPosition,
        # MII profile mode: MR
        t.ScanningSequence,
        t.SequenceVariant,
        t.RepetitionTime,
        t.EchoTime,
        t.InversionTime,
        t.MagneticFieldStrength,
        t.FlipAngle,
        # MII profile mode: ultrasound
        t.SequenceOfUltrasoundRegions,
        t.TransducerFrequency,
        t.TransducerType,
        t.PulseRepetitionFrequency,
        t.UltrasoundColorDataPresent,
        # MII profile mode: NM / PET
        t.Radiopharmaceutical,
        t.RadiopharmaceuticalStartTime,
        t.RadionuclideTotalDose,
        t.RadionuclideHalfLife,
        t.RadiopharmaceuticalStartDateTime,
        t.EnergyWindowInformationSequence,
        t.EnergyWindowRangeSequence,
        t.EnergyWindowLowerLimit,
        t.EnergyWindowUpperLimit,
        t.RadiopharmaceuticalInformationSequence,
        t.RadionuclideCodeSequence,
        t.RadiopharmaceuticalCodeSequence,
        t.SeriesType,
        t.Units,
        # MII profile mode: contrast
        t.ContrastBolusAgent,
        t.ContrastBolusAgentSequence,
        # MII profile mode: image geometry and content (top level or in functional groups)
        t.SliceThickness,
        t.PixelSpacing,
        t.BurnedInAnnotation,
        t.SharedFunctionalGroupsSequence,
        t.PixelMeasuresSequence,
    }
)


class InstanceKey(NamedTuple):
    """The three UIDs that identify an instance."""

    study_uid: str
    series_uid: str
    sop_uid: str


def _uid(ds: Mapping[str, Any], tag: str, name: str, warnings: list[str] | None) -> str:
    elem = ds.get(tag)
    if elem is None:
        elem = ds.get(tag.lower())
    # the class test first: isinstance against the Mapping ABC is slow
    if elem.__class__ is not dict and not isinstance(elem, Mapping):
        raise InvalidInstanceError(
            f"{name} ({tag[:4]},{tag[4:]}) missing or not a DICOM JSON element"
        )
    value = elem.get("Value")
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise InvalidInstanceError(f"{name} ({tag[:4]},{tag[4:]}) has no string value")
    uid = value[0].strip(_PAD)  # the same object when there is no padding
    if _valid_uid(uid):
        return uid
    return _odd_uid(uid, f"{name} ({tag[:4]},{tag[4:]})", warnings)


@functools.lru_cache(maxsize=4096)
def _valid_uid(uid: str) -> bool:
    """True for a UID PS3.5 9.1 allows. Cached: the study and series UIDs repeat in every instance."""
    return len(uid) <= _MAX_UID and _UID.fullmatch(uid) is not None


def _odd_uid(uid: str, label: str, warnings: list[str] | None) -> str:
    """``uid`` (not a valid UID) if only a leading zero is wrong, with a warning; else InvalidInstanceError
    saying what is wrong, without the value."""
    if not uid:
        raise InvalidInstanceError(f"{label} is not a valid UID: it is empty")
    if len(uid) > _MAX_UID:
        raise InvalidInstanceError(f"{label} is not a valid UID: longer than {_MAX_UID} characters")
    if uid.strip("0123456789."):
        raise InvalidInstanceError(
            f"{label} is not a valid UID: a component has a character other than 0-9"
        )
    if _LEGACY_UID.fullmatch(uid) is None:
        raise InvalidInstanceError(
            f"{label} is not a valid UID: a component is empty (leading, trailing or double dot)"
        )
    if warnings is not None:
        warnings.append(
            f"{label}: a UID component has a leading zero (not allowed by PS3.5 9.1); accepted"
        )
    return uid


def check_instance(ds: Mapping[str, Any], warnings: list[str] | None = None) -> InstanceKey:
    """Validate the identity of one DICOM JSON instance and return its UIDs.

    Raises InvalidInstanceError when ``ds`` is not a mapping or lacks a usable StudyInstanceUID (0020,000D),
    SeriesInstanceUID (0020,000E) or SOPInstanceUID (0008,0018); the message names the attribute and what is
    wrong, never the value. A usable UID follows PS3.5 9.1: 1-64 characters, components of digits separated
    by single dots. Padding (spaces, NUL) around it is removed silently; a component with a leading zero
    (``1.2.03``, seen in legacy archives) is accepted with a warning appended to ``warnings``. Lower-case hex
    keys are accepted.
    """
    if ds.__class__ is not dict and not isinstance(ds, Mapping):
        raise InvalidInstanceError("instance is not a JSON object")
    return InstanceKey(
        _uid(ds, t.StudyInstanceUID, "StudyInstanceUID", warnings),
        _uid(ds, t.SeriesInstanceUID, "SeriesInstanceUID", warnings),
        _uid(ds, t.SOPInstanceUID, "SOPInstanceUID", warnings),
    )


def slim_instance(ds: Mapping[str, Any], warnings: list[str] | None = None) -> dict[str, Any]:
    """The instance restricted to ``KEEP_TAGS`` (upper-case keys, no bulk data, nested items too), cleaned.

    Every kept element is cleaned as ``cleaning`` describes: malformed elements, values of the wrong type or
    longer than their VR allows, non-object sequence items and items nested deeper than
    ``cleaning.MAX_SEQUENCE_DEPTH`` are dropped, each with a warning appended to ``warnings`` (when given)
    naming the tag; keys that are not tags give one warning with their count. ``build_study_bundle`` gives the
    same Bundle for the slim and the full instance. The result may share elements with ``ds``: treat it as
    read-only.
    """
    return cleaning.normalize(ds, KEEP_TAGS, warnings)


def is_slim(ds: object) -> bool:
    """True when ``ds`` has the shape ``slim_instance`` gives, as far as keys go: a plain dict whose keys (nested
    items included, to ``cleaning.MAX_SEQUENCE_DEPTH`` levels) are all in ``KEEP_TAGS`` and whose elements
    are dicts. Values are not checked: ``slim_instance`` (or the mapping) cleans them."""
    return _is_slim(ds, 0)


def _is_slim(ds: object, depth: int) -> bool:
    if ds.__class__ is not dict or depth > cleaning.MAX_SEQUENCE_DEPTH:
        return False
    assert isinstance(ds, dict)
    if not ds.keys() <= KEEP_TAGS:
        return False
    for elem in ds.values():
        if elem.__class__ is not dict:
            return False
        value = elem.get("Value")
        if value.__class__ is list and value and elem.get("vr") in ("SQ", None):
            for i in value:
                if isinstance(i, Mapping) and not _is_slim(i, depth + 1):
                    return False
    return True
