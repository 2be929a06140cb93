"""Code tables DICOM -> FHIR (streamer.fhir.terminology): lookups, data files, sources, loading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamer.fhir import terminology as t
from streamer.fhir.terminology import build_tables

SCT = "http://snomed.info/sct"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
DATA = Path(t.__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[3]


# --- body site (PS3.16 Annex L) -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["CHEST", "chest", " Chest ", "CHEST\x00", "ch_est", "Chest"])
def test_body_site_tolerates_case_padding_underscores(value: str) -> None:
    assert t.body_site(value) == {"system": SCT, "code": "43799004", "display": "Chest"}


@pytest.mark.parametrize("value", ["TSPINE", "tspine ", "T_SPINE", "t-spine", "T SPINE"])
def test_body_site_thoracic_spine_variants(value: str) -> None:
    assert t.body_site(value) == {"system": SCT, "code": "122495006", "display": "Thoracic spine"}


def test_body_site_by_code_meaning() -> None:
    hit = t.body_site("abdomen and pelvis")
    assert hit is not None
    assert hit["code"] == "818982008"


@pytest.mark.parametrize("value", ["", "   ", "NOTAPART", "FETALARM", "12345"])
def test_body_site_unmapped_is_none(value: str) -> None:
    assert t.body_site(value) is None


def test_body_site_non_string_is_none() -> None:
    assert t.body_site(None) is None
    assert t.body_site(5) is None


def test_body_site_returns_a_fresh_dict() -> None:
    first = t.body_site("HEAD")
    assert first is not None
    first["code"] = "changed"
    assert t.body_site("HEAD") == {"system": SCT, "code": "69536005", "display": "Head"}


# --- laterality (CID 244) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("R", "24028007"),
        ("L", "7771000"),
        ("B", "51440002"),
        (" r ", "24028007"),
        ("left", "7771000"),
    ],
)
def test_laterality(value: str, code: str) -> None:
    hit = t.laterality(value)
    assert hit is not None
    assert hit["system"] == SCT
    assert hit["code"] == code
    assert hit["display"]


@pytest.mark.parametrize("value", ["U", "", "X", "RL"])
def test_laterality_unknown_or_unpaired_is_none(value: str) -> None:
    assert t.laterality(value) is None


# --- modality (CID 29 / 33) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("CT", "Computed Tomography"),
        ("MR", "Magnetic Resonance"),
        ("PT", "Positron emission tomography"),
    ],
)
def test_modality_coding_has_display(code: str, display: str) -> None:
    assert t.modality_coding(code) == {"system": DCM, "code": code, "display": display}


def test_modality_coding_unknown_has_no_display() -> None:
    assert t.modality_coding("XYZ") == {"system": DCM, "code": "XYZ"}


def test_modality_coding_normalises_known_lower_case() -> None:
    assert t.modality_coding(" mr ")["code"] == "MR"


# --- coding schemes (PS3.16 Section 8) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("designator", "uri"),
    [
        ("SCT", SCT),
        ("SRT", SCT),
        ("SNM3", SCT),
        ("LN", "http://loinc.org"),
        ("RADLEX", "http://radlex.org"),
        ("DCM", DCM),
        ("UCUM", "http://unitsofmeasure.org"),
        ("I10", "http://hl7.org/fhir/sid/icd-10"),
        ("ICD10", "http://hl7.org/fhir/sid/icd-10"),
        ("NCIt", "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"),
        (" sct ", SCT),
    ],
)
def test_coding_system_uri(designator: str, uri: str) -> None:
    assert t.coding_system_uri(designator) == uri


@pytest.mark.parametrize("designator", ["99LOCAL", "", "L", "FOO"])
def test_coding_system_uri_unknown_is_none(designator: str) -> None:
    assert t.coding_system_uri(designator) is None


def test_coding_translates_legacy_snomed_rt_codes() -> None:
    assert t.coding("SRT", "T-D4000", "Abdomen") == {
        "system": SCT,
        "code": "113345001",
        "display": "Abdomen",
    }


def test_coding_untranslatable_legacy_code_has_no_system() -> None:
    assert t.coding("SRT", "X-99999", "Thing") == {"code": "X-99999", "display": "Thing"}


def test_coding_unknown_scheme_keeps_code_without_system() -> None:
    assert t.coding("99MYPACS", "ABC", "Local") == {"code": "ABC", "display": "Local"}


def test_coding_collapses_whitespace_inside_codes() -> None:
    # FHIR code: no leading/trailing or double whitespace (R4B datatypes, code regex)
    assert t.coding("99X", " A  B ", None) == {"code": "A B"}
    assert t.modality_coding("O  T")["code"] == "O T"


def test_coding_known_scheme() -> None:
    assert t.coding("LN", "36643-5", "XR Chest 2V") == {
        "system": "http://loinc.org",
        "code": "36643-5",
        "display": "XR Chest 2V",
    }


def test_snomed_ct_from_srt() -> None:
    assert t.snomed_ct_from_srt("C-B1031") == "35321007"
    assert t.snomed_ct_from_srt("35321007") == "35321007"
    assert t.snomed_ct_from_srt("Z-ZZZZZ") is None


# --- view position (CID 4010 / 4014) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "modality", "code"),
    [
        ("PA", "CR", "272479007"),
        ("AP", "DX", "399348003"),
        ("LL", "CR", "399173006"),
        ("RL", "DX", "399198007"),
        ("MLO", "MG", "399368009"),
        ("CC", "MG", "399162004"),
        ("XCCL", "MG", "399192008"),
        ("postero-anterior", "DX", "272479007"),
        ("R-10206", "DX", "399348003"),
    ],
)
def test_view_position(value: str, modality: str, code: str) -> None:
    hit = t.view_position(value, modality)
    assert hit is not None
    assert hit["code"] == code
    assert hit["system"] == SCT


@pytest.mark.parametrize("value", ["RLD", "LLO", "XX", ""])
def test_view_position_unmapped_is_none(value: str) -> None:
    assert t.view_position(value, "DX") is None


# --- radionuclides / radiopharmaceuticals ---------------------------------------------------------


def test_radionuclide_by_code_legacy_code_and_meaning() -> None:
    f18 = {"system": SCT, "code": "77004003", "display": "^18^Fluorine"}
    assert t.radionuclide("77004003") == f18
    assert t.radionuclide("C-111A1") == f18
    assert t.radionuclide(None, "^18^fluorine") == f18
    assert t.radionuclide("nope", "nothing") is None


def test_radiopharmaceutical_is_not_the_radionuclide_table_b10() -> None:
    fdg = t.radiopharmaceutical(meaning="Fluorodeoxyglucose F^18^")
    assert fdg == {"system": SCT, "code": "35321007", "display": "Fluorodeoxyglucose F^18^"}
    assert t.radiopharmaceutical(meaning="FDG") == fdg
    assert t.radiopharmaceutical(meaning="18F-FDG") == fdg
    assert t.radiopharmaceutical("C-B1031") == fdg
    assert t.radiopharmaceutical(meaning="^18^Fluorine") is None


def test_pet_radiopharmaceutical_dcm_code() -> None:
    hit = t.radiopharmaceutical(meaning="PSMA-11 Ga^68^")
    assert hit is not None
    assert hit["code"]


# --- units (PS3.3 C.8.9.1.1.3 / CID 84) -----------------------------------------------------------


def test_pet_units() -> None:
    assert t.pet_units("BQML") == {
        "system": "http://unitsofmeasure.org",
        "code": "Bq/ml",
        "display": "Becquerels/milliliter",
    }
    assert t.pet_units(" cnts ") is not None
    assert t.pet_units("XYZ") is None  # seed bug B11: no KeyError
    assert t.pet_units("") is None


# --- MII code systems -----------------------------------------------------------------------------


def test_mii_coding() -> None:
    se = t.mii_coding("mii-cs-bildgebung-scanning-sequence", "se ")
    assert se is not None
    assert se["code"] == "SE"
    assert se["system"].endswith("/CodeSystem/mii-cs-bildgebung-scanning-sequence")
    wb = t.mii_coding("mii-cs-bildgebung-series-type", "WHOLE BODY")
    assert wb is not None
    assert wb["code"] == "WHOLEBODY"
    assert t.mii_coding("mii-cs-bildgebung-scanning-sequence", "XX") is None
    assert t.mii_coding("unknown-system", "SE") is None


# --- the data files -------------------------------------------------------------------------------

EXPECTED_MIN_ROWS = {
    "body_sites": 300,
    "laterality": 3,
    "modalities": 70,
    "coding_schemes": 20,
    "view_positions_dx": 40,
    "view_positions_mg": 11,
    "radionuclides": 70,
    "radiopharmaceuticals": 200,
    "units": 18,
    "uid_names": 400,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_MIN_ROWS))
def test_every_table_cites_its_source_and_has_rows(name: str) -> None:
    doc = json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))
    assert "DICOM PS3" in doc["source"]
    assert len(doc["entries"]) >= EXPECTED_MIN_ROWS[name]
    assert t.table_source(name) == doc["source"]


def test_mii_codesystems_table_cites_its_source() -> None:
    doc = json.loads((DATA / "mii_codesystems.json").read_text(encoding="utf-8"))
    assert "kerndatensatz-bildgebung" in doc["source"]
    assert "PS3.3" in doc["source"]


def test_every_json_file_in_data_is_covered() -> None:
    names = {p.stem for p in DATA.glob("*.json")}
    assert names == set(EXPECTED_MIN_ROWS) | {"mii_codesystems"}


def test_pydicom_derived_tables_are_reproducible(tmp_path: Path) -> None:
    import pydicom

    if f"pydicom {pydicom.__version__}" not in t.table_source("modalities"):
        pytest.skip("tables were built with another pydicom version: rerun build_tables")
    counts = build_tables.build(tmp_path)
    for name in counts:
        assert json.loads((tmp_path / name).read_text(encoding="utf-8")) == json.loads(
            (DATA / name).read_text(encoding="utf-8")
        ), name


def test_tables_are_loaded_once() -> None:
    """Every data file is opened on first use and never again (seen by an audit hook, in a fresh process)."""
    code = (
        "import sys; import streamer.fhir.terminology as t; opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) "
        "if event == 'open' and str(args[0]).endswith('.json') else None)\n"
        "for _ in range(5):\n"
        "    t.body_site('CHEST'); t.body_site('KNEE'); t.laterality('L'); t.table_source('body_sites')\n"
        "print('\\n'.join(opened))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    opened = [Path(line) for line in out.stdout.splitlines()]
    names = [p.name for p in opened]
    assert {"body_sites.json", "laterality.json"} <= set(names)
    assert len(names) == len(set(names)), names  # five rounds of lookups, each file opened once
    assert all(p.parent == DATA for p in opened)


def test_no_pandas_at_import_or_lookup() -> None:
    code = (
        "import sys; import streamer.fhir.terminology as t; "
        "t.body_site('CHEST'); t.radiopharmaceutical(meaning='FDG'); t.pet_units('BQML'); "
        "t.coding('SRT', 'T-D4000'); print('pandas' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert out.stdout.strip() == "False"


def test_building_bundles_loads_no_pydicom() -> None:
    """The tables the mapping needs are data files: pydicom (≈ 40 MiB of RSS with its SR dictionaries)
    stays out of the stream processor, whatever the options."""
    code = (
        "import sys\n"
        "from streamer.fhir import MappingOptions, build_study_bundle\n"
        "from tests.dicom_factory import make_instance, study_uid\n"
        "for profile in ('core', 'mii'):\n"
        "    options = MappingOptions(add_instances=True, add_vital_signs=True, profile=profile)\n"
        "    build_study_bundle([make_instance(study_uid(1))], options)\n"
        "print(sorted(m for m in sys.modules if m.startswith('pydicom')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_uid_names_and_modality_groups_match_pydicom() -> None:
    from pydicom._uid_dict import UID_dictionary

    assert t.uid_name("1.2.840.10008.5.1.4.1.1.2") == "CT Image Storage"
    assert t.uid_name("1.2.3.4") is None
    assert all(t.uid_name(uid) == row[0] for uid, row in UID_dictionary.items())
    for cid in (29, 33):
        # the group as the table builder reads it from pydicom now (not from the data file)
        assert t.modality_group(cid) == {row["code"] for row in build_tables._cid_rows(cid)}
    assert "CT" in t.modality_group(29) and "SR" in t.modality_group(33) - t.modality_group(29)
