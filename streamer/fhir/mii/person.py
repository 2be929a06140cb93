"""MII Kerndatensatz Modul Person: when the Patient may claim the MII Patient profile.

The profile (``https://www.medizininformatik-initiative.de/fhir/core/modul-person/StructureDefinition/Patient``)
marks identifier, name (family and given), gender and birthDate must-support; the Patient claims it only when
DICOM gave all four, and only when it also meets the profile's rules those elements touch:

- ``mii-pat-1``: gender ``other`` needs the ``gender-amtlich-de`` extension (divers / unbestimmt), which DICOM's
  PatientSex ``O`` cannot tell, so a Patient with gender ``other`` claims nothing;
- the ``pid`` identifier slice (type v2-0203 ``MR``) is an ``IdentifierPid``, whose ``system`` is mandatory: an
  MR-typed identifier without a system claims nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PATIENT = (
    "https://www.medizininformatik-initiative.de/fhir/core/modul-person/StructureDefinition/Patient"
)
_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _is_mr(identifier: Mapping[str, Any]) -> bool:
    codings = identifier.get("type", {}).get("coding", ())
    return any(c.get("system") == _V2_0203 and c.get("code") == "MR" for c in codings)


def claims_patient_profile(patient: Mapping[str, Any]) -> bool:
    """True when ``patient`` (a mapped Patient dict) has what the MII Patient profile asks for (see above)."""
    identifiers = patient.get("identifier", ())
    if not any(i.get("value") for i in identifiers):
        return False
    if any(_is_mr(i) and not i.get("system") for i in identifiers):
        return False
    if not any(n.get("family") and n.get("given") for n in patient.get("name", ())):
        return False
    gender = patient.get("gender")
    return bool(gender) and gender != "other" and bool(patient.get("birthDate"))
