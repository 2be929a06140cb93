"""One DICOM JSON instance: its identity (``check_instance``) and its slim form (``slim_instance``).

Both run on every message of the stream processor, before any FHIR mapping, so this module needs nothing but
the DICOM JSON accessors: importing it loads neither pydicom nor the FHIR models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.errors import InvalidInstanceError

# What a UID may look like here: a FHIR ``id`` (ImagingStudy series.uid and instance.uid are of that type).
# Proper DICOM UIDs (digits and dots, at most 64) always fit; so do the letters and dashes of a few
# non-conformant real-world UIDs.
_UID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

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


def _uid(ds: Mapping[str, Any], tag: str, name: str) -> str:
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
    uid = value[0].strip(" \x00")
    if not _UID.fullmatch(uid):
        raise InvalidInstanceError(f"{name} ({tag[:4]},{tag[4:]}) is not a valid UID")
    return uid


def check_instance(ds: Mapping[str, Any]) -> InstanceKey:
    """Validate the identity of one DICOM JSON instance and return its UIDs.

    Raises InvalidInstanceError when ``ds`` is not a mapping or lacks a usable StudyInstanceUID (0020,000D),
    SeriesInstanceUID (0020,000E) or SOPInstanceUID (0008,0018). Lower-case hex keys are accepted.
    """
    if ds.__class__ is not dict and not isinstance(ds, Mapping):
        raise InvalidInstanceError("instance is not a JSON object")
    return InstanceKey(
        _uid(ds, t.StudyInstanceUID, "StudyInstanceUID"),
        _uid(ds, t.SeriesInstanceUID, "SeriesInstanceUID"),
        _uid(ds, t.SOPInstanceUID, "SOPInstanceUID"),
    )


def slim_instance(ds: Mapping[str, Any]) -> dict[str, Any]:
    """The instance restricted to ``KEEP_TAGS`` (upper-case keys, no bulk data, nested items too).

    ``build_study_bundle`` gives the same result for the slim and the full instance. The result may share
    elements with ``ds``: treat it as read-only.
    """
    return jm.normalize(ds, KEEP_TAGS)


def is_slim(ds: object) -> bool:
    """True when ``ds`` is already what ``slim_instance`` makes of it, as far as the mappers can tell:
    a plain dict whose keys (nested items included) are all in ``KEEP_TAGS`` and whose elements are dicts."""
    if ds.__class__ is not dict:
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
                if isinstance(i, Mapping) and not is_slim(i):
                    return False
    return True
