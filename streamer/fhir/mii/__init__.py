"""MII Kerndatensatz Modul Bildgebung profile mode (``options.profile == "mii"``).

The German Medical Informatics Initiative (MII) defines FHIR profiles for imaging studies; in this mode the
mapping adds their ``meta.profile`` values and extensions (canonical base :data:`BASE`). Every function takes
DICOM JSON datasets as plain mappings and returns plain ``dict`` extensions (FHIR R4B JSON shape).

One module per part of the profile:

- ``xray_ct``, ``mr``, ``us``, ``nm_pt``: the modality extension of a series, by modality family;
- ``series``: picks the modality extension and adds contrast (``kontrastmittel``) and slice thickness;
- ``instance``: the per-instance details (pixel spacing, slice thickness, image type, burned-in annotation);
- ``study``: the ImagingStudy extensions (reason, weight, height) and the ``meta.profile`` URLs;
- ``common``: URLs, UCUM quantities and the value readers all of them share.

Rules:

- A coded value that is not in the table is never a crash: for extensible/preferred bindings (view
  position, radiopharmaceutical, radionuclide, units) the CodeableConcept keeps only ``text``; for
  required bindings (scanning sequence, sequence variant, transducer type) the value is left out and
  a warning is added.
- Every quantity carries the UCUM ``system`` **and** ``code`` the profile fixes (mGy, kV, ms, mA.s,
  mA, T, deg, s, MBq/Bq, mm, kHz, Hz), with the profile's ``unit`` text.
- Series values are read from **all** instances of the series: multi-valued elements in full,
  single numbers once per instance. When instances disagree on a number, the series value is the
  maximum and a warning says so; the series slice thickness extension is only emitted when all
  instances agree (otherwise the instance level carries it).
- Missing sequences, empty items, odd values: the element is left out. Quantities <= 0
  (placeholders such as KVP 0) are left out with a warning.

``warnings``: every public function takes an optional list to which it appends human-readable
warnings (value left out / ambiguous); nothing is logged here. The DICOM tags read here are all in
``streamer.dicom.tags``, so slimming (``streamer.dicom.instance.KEEP_TAGS``) keeps them.
"""

from __future__ import annotations

from streamer.fhir.mii.common import BASE, URL
from streamer.fhir.mii.instance import instance_extensions
from streamer.fhir.mii.series import series_extensions
from streamer.fhir.mii.study import profile_url, study_extensions

__all__ = [
    "BASE",
    "URL",
    "instance_extensions",
    "profile_url",
    "series_extensions",
    "study_extensions",
]
