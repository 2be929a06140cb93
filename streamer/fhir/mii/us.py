"""MII modality extension of ultrasound series (``modalitaet-us``).

Transducer and Doppler values sit at the top level or in the Sequence of Ultrasound Regions items; both
are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from streamer.dicom import tags as t
from streamer.dicom.json_model import items
from streamer.fhir import terminology
from streamer.fhir.mii.common import (
    URL,
    Dataset,
    Extension,
    complex_extension,
    distinct,
    numbers,
    series_number,
    sub_quantity,
    tag_reader,
    texts,
)

# MII code system with a required binding: a value outside it is left out with a warning.
CS_TRANSDUCER_TYPE: Final = "mii-cs-bildgebung-transducer-type"


def us(instances: Sequence[Dataset], w: list[str] | None, mod: str) -> Extension | None:
    """``mii-ex-bildgebung-modalitaet-us``: transducer type and frequency, pulse repetition frequency
    (0018,6032), whether colour data is present."""
    scopes = list(instances) + [
        r for ds in instances for r in items(ds, t.SequenceOfUltrasoundRegions)
    ]
    subs: list[Extension | None] = []
    types = distinct(v.upper() for ds in scopes for v in texts(ds, t.TransducerType))
    for value in types[:1]:
        coding = terminology.mii_coding(CS_TRANSDUCER_TYPE, value)
        if coding is not None:
            subs.append({"url": "transducerType", "valueCodeableConcept": {"coding": [coding]}})
        elif w is not None:
            w.append(
                f"MII US transducerType (0018,6031): the value is not in {CS_TRANSDUCER_TYPE}; left out"
            )
    if len(types) > 1 and w is not None:
        w.append("MII US transducerType (0018,6031): instances differ; the first is used")
    subs.append(
        sub_quantity(
            "transducerFrequency",
            series_number(scopes, tag_reader(t.TransducerFrequency), "US TransducerFrequency", w),
            "kilohertz",
            "kHz",
        )
    )
    subs.append(
        sub_quantity(
            "pulseRepetitionFrequency",
            series_number(
                scopes, tag_reader(t.PulseRepetitionFrequency), "US PulseRepetitionFrequency", w
            ),
            "hertz",
            "Hz",
        )
    )
    colour = [v for ds in instances for v in numbers(ds, t.UltrasoundColorDataPresent, w)]
    if colour:
        subs.append({"url": "ultrasoundColor", "valueBoolean": any(v == 1 for v in colour)})
    return complex_extension(URL.US, subs)
