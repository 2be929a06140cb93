"""MII modality extension of MR series (``modalitaet-mr``, from the MR Image module)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from streamer.dicom import tags as t
from streamer.dicom.cleaning import tag_label
from streamer.fhir import terminology
from streamer.fhir.mii.common import (
    URL,
    Dataset,
    Extension,
    complex_extension,
    distinct,
    series_number,
    sub_quantity,
    tag_reader,
    texts,
)

# MII code systems with a required binding: a value outside them is left out, never sent as text.
CS_SCANNING_SEQUENCE: Final = "mii-cs-bildgebung-scanning-sequence"
CS_SEQUENCE_VARIANT: Final = "mii-cs-bildgebung-scanning-sequence-variant"


def mr(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-mr``: field strength, sequence codes, times, flip angle.

    Scanning Sequence and Sequence Variant are multi-valued: every distinct value of every instance
    becomes its own coded sub-extension (``["SE", "IR"]`` gives two).
    """
    subs: list[Extension | None] = [
        sub_quantity(
            "magneticFieldStrength",
            series_number(
                instances, tag_reader(t.MagneticFieldStrength), "MR MagneticFieldStrength", w
            ),
            "tesla",
            "T",
        )
    ]
    for tag, name, system_id in (
        (t.ScanningSequence, "scanningSequence", CS_SCANNING_SEQUENCE),
        (t.SequenceVariant, "scanningSequenceVariant", CS_SEQUENCE_VARIANT),
    ):
        for value in distinct(v.upper() for ds in instances for v in texts(ds, tag)):
            coding = terminology.mii_coding(system_id, value)
            if coding is None:  # required binding: leave out, never a text-only concept
                if w is not None:
                    line = f"MII MR {tag_label(tag)}: a value is not in {system_id}; left out"
                    if line not in w:
                        w.append(line)
                continue
            subs.append({"url": name, "valueCodeableConcept": {"coding": [coding]}})
    for tag, name, unit, code in (
        (t.EchoTime, "echoTime", "milliseconds", "ms"),
        (t.RepetitionTime, "repetitionTime", "milliseconds", "ms"),
        (t.InversionTime, "inversionTime", "milliseconds", "ms"),
        (t.FlipAngle, "flipAngle", "plane angle degree", "deg"),
    ):
        subs.append(
            sub_quantity(
                name, series_number(instances, tag_reader(tag), f"MR {name}", w), unit, code
            )
        )
    return complex_extension(URL.MR, subs)
