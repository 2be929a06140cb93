"""MII profile mode, X-ray and MR series: CT, MG/CR/DX and MR extensions with their UCUM quantities."""

from __future__ import annotations

import pytest

from streamer.fhir import mii
from tests.unit.fhir._mii_helpers import (
    BASE,
    SCT,
    UCUM,
    ds,
    ext,
    qty,
    sub,
    subs,
    validate,
)

# --- CT -------------------------------------------------------------------------------------------

CT = ds(
    Modality="CT",
    KVP=120,
    CTDIvol=12.5,
    ExposureTime="500",
    XRayTubeCurrent=200,
    Exposure=100,
    ConvolutionKernel=["B30f", "SHARP"],
    SliceThickness="5.0",
    PixelSpacing=[0.7, 0.6],
)


def test_ct_series_extension_carries_ucum_codes() -> None:
    out = mii.series_extensions("CT", [CT])
    ct = ext(out, "mii-ex-bildgebung-modalitaet-ct")
    assert qty(ct, "CTDIvol") == (12.5, "milligray", UCUM, "mGy")
    assert qty(ct, "KVP") == (120, "kilovolt", UCUM, "kV")
    assert qty(ct, "exposureTime") == (500, "milliseconds", UCUM, "ms")
    assert qty(ct, "exposure") == (100, "milliampere second", UCUM, "mA.s")
    assert qty(ct, "xRayTubeCurrent") == (200, "milliampere", UCUM, "mA")
    assert sub(ct, "convolutionalKernel")["valueString"] == "B30f\\SHARP"
    assert ext(out, "mii-ex-bildgebung-serie-schichtdicke")["valueQuantity"] == {
        "value": 5,
        "unit": "millimeter",
        "system": UCUM,
        "code": "mm",
    }
    validate(out)


def test_ct_differing_values_give_the_series_maximum_and_a_warning() -> None:
    warnings: list[str] = []
    second = {**CT, **ds(XRayTubeCurrent=250)}
    ct = ext(
        mii.series_extensions("CT", [CT, second], warnings=warnings),
        "mii-ex-bildgebung-modalitaet-ct",
    )
    assert qty(ct, "xRayTubeCurrent")[0] == 250
    assert any("XRayTubeCurrent" in w for w in warnings)


def test_ct_micro_unit_fallbacks() -> None:
    inst = ds(Modality="CT", ExposureInuAs=1500, XRayTubeCurrentInuA=250000, ExposureTimeInuS=4000)
    ct = ext(mii.series_extensions("CT", [inst]), "mii-ex-bildgebung-modalitaet-ct")
    assert qty(ct, "exposure")[0] == 1.5
    assert qty(ct, "xRayTubeCurrent")[0] == 250
    assert qty(ct, "exposureTime")[0] == 4


def test_ct_slice_thickness_series_extension_only_when_all_agree() -> None:
    other = {**CT, **ds(SliceThickness=3)}
    out = mii.series_extensions("CT", [CT, other])
    assert all(e["url"] != BASE + "mii-ex-bildgebung-serie-schichtdicke" for e in out)


def test_numbers_as_json_numbers_or_strings() -> None:
    a = ext(mii.series_extensions("CT", [ds(KVP="120.0")]), "mii-ex-bildgebung-modalitaet-ct")
    b = ext(mii.series_extensions("CT", [ds(KVP=120)]), "mii-ex-bildgebung-modalitaet-ct")
    assert qty(a, "KVP") == qty(b, "KVP")


def test_zero_placeholders_are_dropped_with_a_warning() -> None:
    warnings: list[str] = []
    out = mii.series_extensions(
        "CR", [ds(Modality="CR", KVP=0, Exposure="0", ViewPosition="AP")], warnings=warnings
    )
    cr = ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx")
    assert subs(cr, "KVP") == []
    assert subs(cr, "exposure") == []
    assert any("KVP" in w for w in warnings)


def test_non_numeric_ds_is_left_out_not_nested() -> None:
    out = mii.series_extensions("CT", [ds(KVP="120kV", CTDIvol=3)])
    ct = ext(out, "mii-ex-bildgebung-modalitaet-ct")
    assert subs(ct, "KVP") == []
    validate(out)


# --- MR -------------------------------------------------------------------------------------------


def test_mr_series_extension() -> None:
    inst = ds(
        Modality="MR",
        MagneticFieldStrength=3,
        EchoTime=4.5,
        RepetitionTime=2000,
        InversionTime=900,
        FlipAngle=9,
        ScanningSequence=["GR", "IR"],
        SequenceVariant=["SK", "SP", "MP"],
    )
    out = mii.series_extensions("MR", [inst])
    mr = ext(out, "mii-ex-bildgebung-modalitaet-mr")
    assert qty(mr, "magneticFieldStrength") == (3, "tesla", UCUM, "T")
    assert qty(mr, "echoTime") == (4.5, "milliseconds", UCUM, "ms")
    assert qty(mr, "repetitionTime") == (2000, "milliseconds", UCUM, "ms")
    assert qty(mr, "inversionTime") == (900, "milliseconds", UCUM, "ms")
    assert qty(mr, "flipAngle") == (9, "plane angle degree", UCUM, "deg")
    variants = [
        s["valueCodeableConcept"]["coding"][0]["code"] for s in subs(mr, "scanningSequenceVariant")
    ]
    assert variants == ["SK", "SP", "MP"]
    validate(out, modality="MR")


def test_scanning_sequence_multi_valued_read_fully() -> None:
    first = ds(Modality="MR", ScanningSequence=["SE", "IR"])
    # a non-standard backslash-joined string and a third instance adding EP
    second = ds(Modality="MR", ScanningSequence="SE\\IR")
    third = ds(Modality="MR", ScanningSequence=["EP"])
    mr = ext(mii.series_extensions("MR", [first, second, third]), "mii-ex-bildgebung-modalitaet-mr")
    codings = [s["valueCodeableConcept"]["coding"][0] for s in subs(mr, "scanningSequence")]
    assert [c["code"] for c in codings] == ["SE", "IR", "EP"]
    assert all(
        c["system"].endswith("/CodeSystem/mii-cs-bildgebung-scanning-sequence") for c in codings
    )


def test_mr_unknown_scanning_sequence_left_out_with_warning() -> None:
    warnings: list[str] = []
    inst = ds(Modality="MR", ScanningSequence=["SE", "XX"], MagneticFieldStrength=1.5)
    out = mii.series_extensions("MR", [inst], warnings=warnings)
    mr = ext(out, "mii-ex-bildgebung-modalitaet-mr")
    assert [
        s["valueCodeableConcept"]["coding"][0]["code"] for s in subs(mr, "scanningSequence")
    ] == ["SE"]
    # the warning names the attribute, not the value
    assert any("ScanningSequence (0018,0020)" in w for w in warnings), warnings
    assert not any("XX" in w for w in warnings)
    validate(out, modality="MR")


# --- MG / CR / DX ---------------------------------------------------------------------------------


def test_cr_view_position_is_mapped() -> None:
    out = mii.series_extensions("CR", [ds(Modality="CR", ViewPosition="PA", KVP=125)])
    cr = ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx")
    concept = sub(cr, "viewPosition")["valueCodeableConcept"]
    assert concept["coding"] == [
        {"system": SCT, "code": "272479007", "display": "postero-anterior"}
    ]
    assert concept["text"] == "PA"
    assert qty(cr, "KVP") == (125, "kilovolt", UCUM, "kV")
    validate(out, modality="CR")


@pytest.mark.parametrize(
    ("modality", "view"), [("CR", "LL"), ("DX", "RLD"), ("MG", "XX"), ("CR", "ll")]
)
def test_any_view_position_never_crashes(modality: str, view: str) -> None:
    out = mii.series_extensions(modality, [ds(Modality=modality, ViewPosition=view)])
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept["text"] == view
    assert None not in concept.get("coding", [])
    validate(out, modality=modality)


def test_unmapped_view_position_is_text_only() -> None:
    out = mii.series_extensions("DX", [ds(Modality="DX", ViewPosition="RLD")])
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept == {"text": "RLD"}


def test_mg_view_position_uses_cid_4014() -> None:
    out = mii.series_extensions("MG", [ds(Modality="MG", ViewPosition="MLO")])
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept["coding"][0]["code"] == "399368009"


def test_view_positions_differing_between_instances_kept_as_text() -> None:
    warnings: list[str] = []
    insts = [ds(Modality="CR", ViewPosition="PA"), ds(Modality="CR", ViewPosition="LL")]
    out = mii.series_extensions("CR", insts, warnings=warnings)
    concept = sub(ext(out, "mii-ex-bildgebung-modalitaet-mg-cr-dx"), "viewPosition")[
        "valueCodeableConcept"
    ]
    assert concept == {"text": "PA\\LL"}
    assert warnings
