"""One DICOM JSON instance: identity check, slimming to the mapped tags, keyword view for ``id_function``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from pydicom.datadict import dictionary_VR, tag_for_keyword

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.errors import InvalidInstanceError
from streamer.fhir.mii import MII_TAGS

# FHIR ``id`` (R4B datatypes) — series.uid and instance.uid are of that type; DICOM UIDs (PS3.5 9.1, [0-9.]{1,64})
# always fit, a few non-conformant real-world UIDs (letters, dashes) still do.
_UID = re.compile(r"[A-Za-z0-9\-.]{1,64}")

# Tags read by the MII profile mode (PS3.3 keywords in comments); kept by slim_instance.
_MII_TAGS = frozenset(
    {
        "00180060",  # KVP
        "00181150",  # ExposureTime
        "00181152",  # Exposure
        "00181151",  # XRayTubeCurrent
        "00189345",  # CTDIvol
        "00181210",  # ConvolutionKernel
        "00180020",  # ScanningSequence
        "00180021",  # SequenceVariant
        "00180087",  # MagneticFieldStrength
        "00180081",  # EchoTime
        "00180080",  # RepetitionTime
        "00180082",  # InversionTime
        "00181314",  # FlipAngle
        "00185101",  # ViewPosition
        "00540016",  # RadiopharmaceuticalInformationSequence
        "00180031",  # Radiopharmaceutical
        "00540300",  # RadionuclideCodeSequence
        "00540304",  # RadiopharmaceuticalCodeSequence
        "00181072",  # RadiopharmaceuticalStartTime
        "00181078",  # RadiopharmaceuticalStartDateTime
        "00181074",  # RadionuclideTotalDose
        "00181075",  # RadionuclideHalfLife
        "00541001",  # Units
        "00541000",  # SeriesType
        "00180010",  # ContrastBolusAgent
        "00180012",  # ContrastBolusAgentSequence
        "00186031",  # TransducerType
        "00186030",  # TransducerFrequency
        "00186028",  # PulseRepetitionFrequency (Doppler)
        "00280030",  # PixelSpacing
        "00180050",  # SliceThickness
        "00280301",  # BurnedInAnnotation
        "00080008",  # ImageType
    }
)


def _mapped_tags() -> frozenset[str]:
    own = {
        v
        for k, v in vars(t).items()
        if not k.startswith("_") and isinstance(v, str) and len(v) == 8
    }
    return frozenset(own) | _MII_TAGS | MII_TAGS


KEEP_TAGS: frozenset[str] = _mapped_tags()


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


def slim_instance(ds: Mapping[str, Any]) -> dict[str, Any]:
    """The instance restricted to the tags the mappers read (upper-case keys, no bulk data, nested too).

    ``build_study_bundle`` gives the same result for the slim and the full instance.
    """
    return jm.normalize(ds, KEEP_TAGS)


def _case_variants(tags: frozenset[str]) -> frozenset[str]:
    """Every other spelling of ``tags`` with some hex letters in lower case (``0020000d`` for ``0020000D``)."""
    out: set[str] = set()
    for tag in tags:
        spellings = [""]
        for c in tag:
            spellings = [s + v for s in spellings for v in {c, c.lower()}]
        out.update(spellings)
    return frozenset(out - tags)


# Keys that slim_instance reads as a kept tag although a plain ``ds.get(tag)`` misses them.
_LOWER_CASE_KEEP = _case_variants(KEEP_TAGS)


def _structured(tags: frozenset[str]) -> frozenset[str]:
    """The tags of ``tags`` whose values are objects, not strings or numbers: VR SQ (items are datasets) or PN
    (``{"Alphabetic": ...}``) in the data dictionary."""
    out = set()
    for tag in tags:
        try:
            vr = dictionary_VR(int(tag, 16))
        except KeyError:
            continue
        if vr in ("SQ", "PN"):
            out.add(tag)
    return frozenset(out)


STRUCTURED_TAGS: frozenset[str] = _structured(KEEP_TAGS)


def readable_instance(ds: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh dict from which the mappers read what they read from ``slim_instance(ds)``, made much faster.

    Slimming rebuilds an instance element by element (~50 kept of ~90), the largest cost of a mapping, and
    most elements come out as they went in. This is a shallow copy of the caller's dict instead, in which only
    the elements of ``STRUCTURED_TAGS`` (sequences, person names) are slimmed. Every other tag holds the
    caller's element, which reads the same because of how the mappers read:

    - through the ``json_model`` value accessors, which see only a list ``Value`` and skip object values: an
      element slimming would rebuild (bulk data, odd members, no ``vr``) gives the same strings and numbers;
      the object values slimming changes (items, PN groups) are read only in ``STRUCTURED_TAGS``;
    - presence through ``json_model.has`` (a non-object counts as absent, as slimming drops it);
    - element equality through ``context.same_elements`` / ``context.slim_element`` (equal elements stay equal
      when slimmed; unequal ones are compared slimmed);
    - tags outside ``KEEP_TAGS`` never (``StudyContext.view`` for ``id_function`` is built from the slim form).

    An instance slimming would re-key (a lower-case spelling of a kept tag) or that is not a dict is slimmed;
    an already slim one is copied as it is, as ``build_study_bundle`` always did. Shares elements with ``ds``:
    read-only.
    """
    if is_slim(ds):
        return dict(ds)
    if ds.__class__ is not dict or not ds.keys().isdisjoint(_LOWER_CASE_KEEP):
        return slim_instance(ds)
    out = dict(ds)
    for key in ds.keys() & STRUCTURED_TAGS:
        elem = ds[key]
        normalized = jm.normalize_element(elem, KEEP_TAGS)
        if normalized is None:
            del out[key]
        elif normalized is not elem:
            out[key] = normalized
    return out


class DatasetView:
    """Keyword attribute access on a DICOM JSON dataset, for ``id_function`` (seed compatibility).

    ``view.PatientID`` returns the single value (PN: the Alphabetic text), a list for multi-valued elements,
    ``""`` for an element without value; an absent element raises AttributeError like the seed's proxy.
    """

    __slots__ = ("_ds",)

    def __init__(self, ds: Mapping[str, Any]) -> None:
        self._ds = ds

    def _tag(self, keyword: str) -> str | None:
        tag = tag_for_keyword(keyword)
        return None if tag is None else f"{tag:08X}"

    def __getattr__(self, keyword: str) -> Any:
        tag = self._tag(keyword)
        if tag is None or tag not in self._ds:
            raise AttributeError(f"No such DICOM attribute: {keyword}")
        values = jm.raw_values(self._ds, tag)
        out = [
            (v.get("Alphabetic", "") if isinstance(v, Mapping) and "vr" not in v else v)
            for v in values
        ]
        if not out:
            return ""
        return out[0] if len(out) == 1 else out

    def __contains__(self, keyword: object) -> bool:
        tag = self._tag(keyword) if isinstance(keyword, str) else None
        return tag is not None and tag in self._ds

    def get(self, keyword: str, default: Any = None) -> Any:
        """``getattr`` with a default."""
        try:
            return getattr(self, keyword)
        except AttributeError:
            return default

    def non_empty(self, keyword: str) -> bool:
        """True when the element is present with a non-empty value (seed ``ds.non_empty``)."""
        value = self.get(keyword)
        return value not in (None, "", [])
