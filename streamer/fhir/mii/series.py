"""MII extensions of one ``ImagingStudy.series``: the modality extension, contrast and slice thickness."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from streamer.dicom import tags as t
from streamer.dicom.json_model import items, strings
from streamer.fhir.mii.common import (
    URL,
    Builder,
    Dataset,
    Extension,
    code_triplet,
    distinct,
    quantity,
    slice_thickness_of,
)
from streamer.fhir.mii.mr import mr
from streamer.fhir.mii.nm_pt import nm, pt
from streamer.fhir.mii.us import us
from streamer.fhir.mii.xray_ct import ct, mg_cr_dx

# The modality extension each modality gets; other modalities get none.
MODALITY_BUILDERS: Final[Mapping[str, Builder]] = {
    "CT": ct,
    "MR": mr,
    "MG": mg_cr_dx,
    "CR": mg_cr_dx,
    "DX": mg_cr_dx,
    "NM": nm,
    "PT": pt,
    "US": us,
}

# Modalities whose images include the Contrast/Bolus module, which is required when contrast media was
# used: for these an absent agent means "no contrast" -> contrastBolus false.
CONTRAST_MODALITIES: Final = frozenset(
    {"CT", "MR", "XA", "RF", "CR", "DX", "MG", "IO", "PX", "US", "NM", "PT"}
)
# Agent texts that say "none" (seen in practice); they count as no contrast.
NO_AGENT: Final = frozenset(
    {"NONE", "NO", "N", "NA", "N/A", "-", "0", "NIL", "KEIN", "KEINE", "OHNE"}
)


def series_extensions(
    modality: str,
    instances: Sequence[Mapping[str, Any]],
    *,
    warnings: list[str] | None = None,
) -> list[Extension]:
    """MII extensions for one ``ImagingStudy.series`` from all the series' instances.

    Modality CT -> ``modalitaet-ct``; MR -> ``-mr``; MG/CR/DX -> ``-mg-cr-dx``; NM -> ``-nm``;
    PT -> ``-pt``; US -> ``-us``; plus ``kontrastmittel`` (modalities with the Contrast/Bolus
    module) and ``serie-schichtdicke`` (Slice Thickness (0018,0050) equal in all instances).
    An extension without any sub-extension is not emitted.
    """
    mod = modality.strip().upper() if isinstance(modality, str) else ""
    out: list[Extension] = []
    builder = MODALITY_BUILDERS.get(mod)
    if builder is not None and instances:
        ext = builder(instances, warnings, mod)
        if ext is not None:
            out.append(ext)
    if instances:
        contrast = _contrast(mod, instances)
        if contrast is not None:
            out.append(contrast)
        thickness = _slice_thickness(instances, warnings)
        if thickness is not None:
            out.append(thickness)
    return out


def _contrast(modality: str, instances: Sequence[Dataset]) -> Extension | None:
    """``mii-ex-bildgebung-kontrastmittel`` from Contrast/Bolus Agent (0018,0010) / (0018,0012)."""
    agents: list[str] = []
    for ds in instances:
        agents.extend(a for a in strings(ds, t.ContrastBolusAgent) if a.upper() not in NO_AGENT)
        for item in items(ds, t.ContrastBolusAgentSequence):
            code, _, meaning = code_triplet(item)
            if meaning or code:
                agents.append(meaning or code or "")
    agents = distinct(agents)
    if not agents and modality not in CONTRAST_MODALITIES:
        return None
    subs: list[Extension] = [{"url": "contrastBolus", "valueBoolean": bool(agents)}]
    subs.extend({"url": "contrastBolusDetails", "valueReference": {"display": a}} for a in agents)
    return {"url": URL.CONTRAST, "extension": subs}


def _slice_thickness(instances: Sequence[Dataset], warnings: list[str] | None) -> Extension | None:
    """``mii-ex-bildgebung-serie-schichtdicke``, only when all instances agree (otherwise each
    instance carries its own value in ``instanz-details``)."""
    values = [slice_thickness_of(ds, warnings) for ds in instances]
    found = {v for v in values if v is not None}
    if len(found) != 1 or any(v is None for v in values):
        return None
    return {
        "url": URL.SLICE_THICKNESS,
        "valueQuantity": quantity(found.pop(), "millimeter", "mm"),
    }
