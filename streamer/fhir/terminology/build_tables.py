"""Rebuild the context-group tables in ``data/`` from pydicom's bundled DICOM PS3.16 dictionaries.

``python -m streamer.fhir.terminology.build_tables [-o DATA_DIR]``

pydicom (``pydicom.sr._cid_dict`` and ``pydicom.sr._concepts_dict``) ships every context group of
DICOM PS3.16 Annex B (code value, coding scheme designator, code meaning), generated from the
standard's own tables; ``pydicom.sr._snomed_dict`` holds the SNOMED-RT ID <-> SNOMED CT ID pairs of
the standard's SNOMED tables. The tables written here therefore cite "DICOM PS3.16 CID n (via
pydicom x.y.z)". Tables that pydicom does not carry (the "ACR MQCM 1999 Equivalent" column of
CID 4014, the defined terms of View Position (0018,5101) in PS3.3, the Units (0054,1001) defined
terms of PS3.3 C.8.9.1.1.3) are stated here explicitly with their section.

This is a development tool: it runs offline and is not used at conversion time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pydicom

DATA_DIR = Path(__file__).with_name("data")

# PS3.3 C.8.11.5.1 (DX Positioning Module): defined terms of View Position (0018,5101) for DX/CR
# and the usual radiographic abbreviations of CID 4010 meanings. RLD/LLD/RLO/LLO have no concept
# in CID 4010 and are left out on purpose (they stay text).
_DX_ABBREVIATIONS: dict[str, str] = {
    "AP": "399348003",  # antero-posterior
    "PA": "272479007",  # postero-anterior
    "LL": "399173006",  # left lateral
    "RL": "399198007",  # right lateral
    "LAT": "399067008",  # lateral
    "RAO": "399356000",  # right anterior oblique
    "LAO": "399135007",  # left anterior oblique
    "RPO": "399038007",  # right posterior oblique
    "LPO": "399006002",  # left posterior oblique
}

# PS3.16 CID 4014 "View for Mammography", column "ACR MQCM 1999 Equivalent" (also the MG defined
# terms of View Position (0018,5101), PS3.3 C.8.11.7.1.x / IHE Mammography profile).
_MG_ABBREVIATIONS: dict[str, str] = {
    "ML": "399260004",  # medio-lateral
    "MLO": "399368009",  # medio-lateral oblique
    "LM": "399352003",  # latero-medial
    "LMO": "399099002",  # latero-medial oblique
    "CC": "399162004",  # cranio-caudal
    "FB": "399196006",  # caudo-cranial (from below)
    "SIO": "399188001",  # superolateral to inferomedial oblique
    "ISO": "441555000",  # inferomedial to superolateral oblique
    "XCCL": "399192008",  # cranio-caudal exaggerated laterally
    "XCCM": "399101009",  # cranio-caudal exaggerated medially
}

# Free-text names of Radiopharmaceutical (0018,0031) seen in practice for CID 4021 concepts whose
# code meaning is spelled differently ("Fluorodeoxyglucose F^18^"). Keys are compared with all
# non-alphanumeric characters removed, upper case.
_RADIOPHARMACEUTICAL_SYNONYMS: dict[str, str] = {
    "FDG": "35321007",
    "18FFDG": "35321007",
    "F18FDG": "35321007",
    "FDGF18": "35321007",
    "FLUORODEOXYGLUCOSE": "35321007",
    "NAF": "129501009",
    "18FNAF": "129501009",
}

_SYSTEMS = {
    "SCT": "http://snomed.info/sct",
    "DCM": "http://dicom.nema.org/resources/ontology/DCM",
    "UCUM": "http://unitsofmeasure.org",
}


def _cid_rows(cid: int) -> list[dict[str, Any]]:
    """Every concept of context group ``cid`` as ``{scheme, code, display[, srt]}`` rows."""
    from pydicom.sr import _cid_dict, _concepts_dict, _snomed_dict

    sct_to_srt: dict[str, str] = _snomed_dict.mapping["SCT"]
    groups: dict[str, list[str]] = _cid_dict.cid_concepts[cid]
    concepts: dict[str, dict[str, Any]] = _concepts_dict.concepts
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for scheme, keywords in groups.items():
        for keyword in keywords:
            for code, (meaning, cids) in concepts[scheme][keyword].items():
                if cid not in cids or (scheme, code) in seen:
                    continue
                seen.add((scheme, code))
                row: dict[str, Any] = {"scheme": scheme, "code": code, "display": meaning}
                if scheme == "SCT" and code in sct_to_srt:
                    row["srt"] = sct_to_srt[code]
                rows.append(row)
    rows.sort(key=lambda r: (r["scheme"], r["display"].lower(), r["code"]))
    return rows


def _source(cids: str) -> str:
    return f"DICOM PS3.16 {cids} (via pydicom {pydicom.__version__} pydicom.sr dictionaries)"


def build(out_dir: Path) -> dict[str, int]:
    """Write all pydicom-derived tables into ``out_dir``; return row counts per file."""
    tables: dict[str, dict[str, Any]] = {}

    tables["laterality.json"] = {
        "source": _source("CID 244 Laterality")
        + "; DICOM codes R/L/B of Laterality (0020,0060) / Image Laterality (0020,0062), PS3.3 C.7.3.1",
        "system": _SYSTEMS["SCT"],
        "dicom_terms": {"R": "24028007", "L": "7771000", "B": "51440002"},
        "entries": _cid_rows(244),
    }

    modality_rows = {cid: _cid_rows(cid) for cid in (29, 33)}
    modalities: dict[str, dict[str, Any]] = {}
    for rows in modality_rows.values():
        for row in rows:
            modalities.setdefault(row["code"], row)
    tables["modalities.json"] = {
        "source": _source("CID 29 Acquisition Modality and CID 33 Modality"),
        "system": _SYSTEMS["DCM"],
        # the codes of each group: ImagingStudy.modality lists only those of its group (29, MII: 33)
        "cids": {
            str(cid): sorted({row["code"] for row in rows}) for cid, rows in modality_rows.items()
        },
        "entries": sorted(modalities.values(), key=lambda r: r["code"]),
    }

    from pydicom._uid_dict import UID_dictionary

    tables["uid_names.json"] = {
        "source": f"DICOM PS3.6 Annex A Registry of DICOM Unique Identifiers (via pydicom "
        f"{pydicom.__version__} pydicom._uid_dict): UID -> name, for the display of sopClass codings",
        "entries": {uid: row[0] for uid, row in sorted(UID_dictionary.items())},
    }

    dx_rows = _cid_rows(4010)
    dx_codes = {r["code"] for r in dx_rows}
    assert set(_DX_ABBREVIATIONS.values()) <= dx_codes
    tables["view_positions_dx.json"] = {
        "source": _source("CID 4010 DX View")
        + "; abbreviations = View Position (0018,5101) defined terms of PS3.3 C.8.11.5.1 (AP, PA, LL,"
        " RL) and the radiographic abbreviations of the CID 4010 meanings (RAO, LAO, RPO, LPO, LAT)",
        "system": _SYSTEMS["SCT"],
        "abbreviations": _DX_ABBREVIATIONS,
        "entries": dx_rows,
    }
    mg_rows = _cid_rows(4014)
    mg_codes = {r["code"] for r in mg_rows}
    assert set(_MG_ABBREVIATIONS.values()) <= mg_codes, set(_MG_ABBREVIATIONS.values()) - mg_codes
    tables["view_positions_mg.json"] = {
        "source": _source("CID 4014 View for Mammography")
        + "; abbreviations = its column 'ACR MQCM 1999 Equivalent'",
        "system": _SYSTEMS["SCT"],
        "abbreviations": _MG_ABBREVIATIONS,
        "entries": mg_rows,
    }

    tables["radionuclides.json"] = {
        "source": _source("CID 18 Isotopes in Radiopharmaceuticals and CID 4020 PET Radionuclide"),
        "entries": _merge(_cid_rows(18), _cid_rows(4020)),
    }
    pharma = _merge(_cid_rows(25), _cid_rows(4021))
    assert set(_RADIOPHARMACEUTICAL_SYNONYMS.values()) <= {r["code"] for r in pharma}
    tables["radiopharmaceuticals.json"] = {
        "source": _source("CID 25 Radiopharmaceuticals and CID 4021 PET Radiopharmaceutical")
        + "; synonyms = common free-text names (e.g. FDG) of CID 4021 concepts, hand-made",
        "synonyms": _RADIOPHARMACEUTICAL_SYNONYMS,
        "entries": pharma,
    }

    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, table in tables.items():
        (out_dir / name).write_text(
            json.dumps(table, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        counts[name] = len(table["entries"])
    return counts


def _merge(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for rows in groups:
        for row in rows:
            merged.setdefault((row["scheme"], row["code"]), row)
    return sorted(merged.values(), key=lambda r: (r["scheme"], r["display"].lower(), r["code"]))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", type=Path, default=DATA_DIR, help="output directory")
    args = parser.parse_args(argv)
    for name, count in build(args.out).items():
        print(f"{name}: {count} rows")  # noqa: T201
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
