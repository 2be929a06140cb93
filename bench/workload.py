"""Deterministic synthetic DICOM JSON workload for the conversion benchmark.

Each instance is a dict shaped exactly like pydicom's ``Dataset.to_json_dict()``: keys are upper-case
``"GGGGEEEE"`` tags in ascending order, values are ``{"vr": ..., "Value": [...]}``; PN values are
``{"Alphabetic": "Family^Given^Middle^Prefix^Suffix"}``; IS/US values are JSON integers and DS/FD values
JSON floats (what pydicom emits); SQ items are nested dicts of the same shape. A CT instance carries 83-84
top-level tags, an MR instance 85-87 (the seed's speed was first measured with 78-tag instances). Every instance
round-trips unchanged through ``pydicom.Dataset.from_json(d).to_json_dict()`` and every VR matches the
DICOM data dictionary (checked when this file was written).

Everything comes from ``random.Random(seed)``: no wall clock, no uuid4, no hash randomisation, so the same
seed gives byte-identical instances in any process and any Python 3.11 venv (stdlib only, so the seed's
venv can import this file too). ``digest()`` fingerprints a workload so two processes can prove they
converted the same data.

Values are realistic but chosen so the seed library (dicom2fhir 0.1.25) converts every study, since the
benchmark compares throughput, not robustness. Each rule below avoids input on which the seed fails:

* Modalities are CT and MR only. CR/DX/MG ViewPosition, PT radiopharmaceuticals and NM/PT Units crash the
  seed; CT/MR carry no such attributes.
* Every TM is ``HHMMSS`` or ``HHMMSS.ffffff`` with second < 60: ``HH:MM:SS`` or a leap second raises in the
  seed.
* ImageType and BodyPartExamined values carry no padding (a trailing space fails the seed's Coding.code
  regex); BodyPartExamined values are upper-case Annex L terms (HEAD, CHEST, ABDOMEN, KNEE, SHOULDER).
* PixelSpacing always has two values (one value raises IndexError in the seed).
* Every element has a non-empty ``Value`` (no ``{"vr": "LO"}`` and no ``Value: []``: the seed fails on them).
* SOPInstanceUIDs are unique (a duplicate crashes the seed) and every instance has StudyInstanceUID,
  SeriesInstanceUID, SOPClassUID and Modality (the seed needs all four).
* DeviceSerialNumber is always present, so the seed's Device id is a hash, not a random uuid4.
* TimezoneOffsetFromUTC (0008,0201) is left out, so both converters take the zone from
  ``dicom_timezone`` (the seed ignores the tag; ours would honour it).
* No RequestAttributesSequence / ReferencedRequestSequence: the seed's reason mapping reads the wrong
  dataset, so it would measure a bug, not a mapping.
* IssuerOfPatientID is kept (realistic) although it makes the seed's ``model_dump_json`` emit a pydantic
  UserWarning; the seed driver silences warnings so printing does not enter the timing.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from typing import Any

DEFAULT_SEED = 20261125

Instance = dict[str, dict[str, Any]]
Study = list[Instance]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One benchmark case: how many studies of how many instances, and the conversion options."""

    key: str
    label: str
    studies: int
    instances_per_study: int
    series_per_study: tuple[int, ...]  # choices; drawn per study from the RNG
    add_instances: bool

    @property
    def instances(self) -> int:
        return self.studies * self.instances_per_study


# The two scenarios the seed's speed was first measured on (a and b), plus the other option setting of each.
SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario("a", "200 studies x 5 instances, one call per study", 200, 5, (1, 2), False),
        Scenario("b", "1 study x 1,000 instances, add_instances", 1, 1000, (4,), True),
        Scenario("a+i", "200 studies x 5 instances, add_instances", 200, 5, (1, 2), True),
        Scenario("b-i", "1 study x 1,000 instances, no instances", 1, 1000, (4,), False),
    )
}

SOP_CLASS = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4"}

_FAMILY = ["Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
           "Schulz", "Hoffmann", "Koch", "Richter", "Klein", "Wolf", "Neumann", "Schwarz"]  # fmt: skip
_GIVEN_M = ["Lukas", "Jonas", "Felix", "Paul", "Max", "Elias", "Noah", "Leon"]
_GIVEN_F = ["Anna", "Marie", "Sophie", "Emma", "Lea", "Hannah", "Mia", "Clara"]
_STREETS = ["Hauptstr.", "Bahnhofstr.", "Gartenweg", "Schillerstr.", "Lindenallee", "Bergstr."]
_CITIES = [("Berlin", "BE", "10115"), ("München", "BY", "80331"), ("Hamburg", "HH", "20095"),
           ("Köln", "NW", "50667"), ("Leipzig", "SN", "04109"), ("Erlangen", "BY", "91054")]  # fmt: skip
_REFERRERS = ["Becker^Thomas^^Dr. med.", "Vogel^Julia^^Dr.", "Krüger^Stefan^^Prof. Dr.", "Lang^Eva"]
_READERS = ["Hartmann^Peter^^Dr.", "Seidel^Monika^^Dr. med.", "Brandt^Jan"]
_INSTITUTIONS = [
    ("Universitätsklinikum Erlangen", "Radiologisches Institut", "Maximiliansplatz 2^^Erlangen"),
    ("Charité Berlin", "Klinik für Radiologie", "Charitéplatz 1^^Berlin"),
    ("Klinikum rechts der Isar", "Diagnostische Radiologie", "Ismaninger Str. 22^^München"),
]

# Study types: modality, study description, procedure code (value, scheme, meaning), body parts, series
# descriptions (first ones used first), contrast agent or None, laterality-bearing body part or not.
_CT_STUDIES = [
    ("CT Thorax mit KM", ("RPID16", "RADLEX", "CT CHEST WITH IV CONTRAST"), "CHEST",
     ["Thorax 1.0 B70f", "Thorax 3.0 Br40", "Topogramm", "Lunge 1.0"], "Iomeprol 400"),
    ("CT Abdomen/Becken", ("RPID144", "RADLEX", "CT ABDOMEN PELVIS WITH IV CONTRAST"), "ABDOMEN",
     ["Abdomen 3.0 I30f", "Abdomen portalvenös", "Topogramm", "Koronar 3.0"], "Iopromid 370"),
    ("CCT nativ", ("RPID22", "RADLEX", "CT HEAD WITHOUT IV CONTRAST"), "HEAD",
     ["Kopf 5.0 H31s", "Kopf 1.0 Hr40", "Topogramm", "Knochen 1.0 H70h"], None),
]  # fmt: skip
_MR_STUDIES = [
    ("MRT Schädel", ("24590-2", "LN", "MR Brain"), "HEAD",
     ["t2_tse_tra", "t1_mprage_sag", "flair_tra", "dwi_tra"], None),
    ("MRT Knie", ("24954-0", "LN", "MR Knee"), "KNEE",
     ["pd_tse_fs_cor", "t1_tse_sag", "pd_tse_fs_tra", "t2_me2d_sag"], None),
    ("MRT Schulter", ("26227-9", "LN", "MR Shoulder"), "SHOULDER",
     ["pd_tse_fs_cor", "t1_tse_cor", "pd_tse_fs_sag", "pd_tse_fs_tra"], None),
]  # fmt: skip
_LATERAL = {"KNEE", "SHOULDER"}
_EQUIPMENT = {
    "CT": [("SIEMENS", "SOMATOM Force", ["syngo CT VA50A", "SOMARIS/7 VA50A"]),
           ("GE MEDICAL SYSTEMS", "Revolution CT", ["revo_ct_22mw.44", "LightSpeed"])],
    "MR": [("SIEMENS", "MAGNETOM Vida", ["syngo MR XA31", "XA31A"]),
           ("Philips", "Ingenia 3.0T", ["5.7.1", "5.7.1.3"])],
}  # fmt: skip


def _v(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)}


def _pn(name: str) -> dict[str, Any]:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]}


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(128)}"


def _da(rng: random.Random, y0: int, y1: int) -> str:
    return f"{rng.randint(y0, y1):04d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"


def _tm(h: int, m: int, s: int, frac: int | None = None) -> str:
    return f"{h:02d}{m:02d}{s:02d}" + ("" if frac is None else f".{frac:06d}")


def _patient(rng: random.Random, n: int) -> dict[str, Any]:
    sex = rng.choice("MF")
    given = rng.choice(_GIVEN_M if sex == "M" else _GIVEN_F)
    middle = rng.choice(["", "", rng.choice(_GIVEN_M if sex == "M" else _GIVEN_F)])
    street, (city, state, plz) = rng.choice(_STREETS), rng.choice(_CITIES)
    birth = _da(rng, 1935, 2010)
    height = round(rng.uniform(1.50, 1.98), 2) if sex == "M" else round(rng.uniform(1.45, 1.85), 2)
    return {
        "name": f"{rng.choice(_FAMILY)}^{given}^{middle}",
        "id": f"PID{100000 + n:07d}",
        "issuer": "KIS-ERL",
        "sex": sex,
        "birth": birth,
        "age": f"{max(1, 2026 - int(birth[:4])):03d}Y",
        "weight": round(rng.uniform(48.0, 120.0), 1),
        "size": height,
        "address": f"{street} {rng.randint(1, 120)}^^{city}^{state}^{plz}^DE",
        "phone": f"+49 {rng.randint(30, 99)} {rng.randint(100000, 9999999)}",
    }


def _study(rng: random.Random, scenario: Scenario, study_no: int, patient: dict[str, Any]) -> Study:
    modality = "CT" if rng.random() < 0.6 else "MR"
    desc, proc, body_part, series_descs, agent = rng.choice(
        _CT_STUDIES if modality == "CT" else _MR_STUDIES
    )
    manufacturer, model, versions = rng.choice(_EQUIPMENT[modality])
    institution, department, inst_address = rng.choice(_INSTITUTIONS)
    study_uid, frame_uid = _uid(rng), _uid(rng)
    study_date = _da(rng, 2023, 2026)
    h, m, s = rng.randint(7, 18), rng.randint(0, 59), rng.randint(0, 59)
    accession = f"ACC{rng.randint(10**8, 10**9 - 1)}"
    referrer, reader = rng.choice(_REFERRERS), rng.choice(_READERS)
    station = f"{modality}{rng.randint(1, 9):02d}_{institution.split()[0][:6].upper()}"  # SH: <= 16
    serial = f"{rng.randint(10000, 99999)}"
    laterality = rng.choice("RL") if body_part in _LATERAL else None

    n_series = rng.choice(scenario.series_per_study)
    sizes = [scenario.instances_per_study // n_series] * n_series
    sizes[0] += scenario.instances_per_study - sum(sizes)

    study_common: Instance = {
        "00080005": _v("CS", "ISO_IR 100"),
        "00080020": _v("DA", study_date),
        "00080030": _v("TM", _tm(h, m, s)),
        "00080050": _v("SH", accession),
        "00080060": _v("CS", modality),
        "00080070": _v("LO", manufacturer),
        "00080080": _v("LO", institution),
        "00080081": _v("ST", inst_address),
        "00080090": _pn(referrer),
        "00081010": _v("SH", station),
        "00081030": _v("LO", desc),
        "00081032": _v(
            "SQ",
            {
                "00080100": _v("SH", proc[0]),
                "00080102": _v("SH", proc[1]),
                "00080104": _v("LO", proc[2]),
            },
        ),
        "00081040": _v("LO", department),
        "00081060": _pn(reader),
        "00081090": _v("LO", model),
        "00100010": _pn(patient["name"]),
        "00100020": _v("LO", patient["id"]),
        "00100021": _v("LO", patient["issuer"]),
        "00100030": _v("DA", patient["birth"]),
        "00100040": _v("CS", patient["sex"]),
        "00101010": _v("AS", patient["age"]),
        "00101020": _v("DS", patient["size"]),
        "00101030": _v("DS", patient["weight"]),
        "00101040": _v("LO", patient["address"]),
        "00102154": _v("SH", patient["phone"]),
        "00181000": _v("LO", serial),
        "00181020": _v("LO", *versions),
        "0020000D": _v("UI", study_uid),
        "00200010": _v("SH", f"{rng.randint(1, 99999)}"),
        "00200052": _v("UI", frame_uid),
        "00201040": _v("LO", ""),
        "00321060": _v("LO", desc),
        "00400244": _v("DA", study_date),
        "00400245": _v("TM", _tm(h, m, s)),
        "00400253": _v("SH", f"PPS{rng.randint(10**6, 10**7 - 1)}"),
        "00400254": _v("LO", desc),
    }
    del study_common["00201040"]  # PositionReferenceIndicator: empty in practice, so left out
    if modality == "MR":
        study_common["00180087"] = _v("DS", 3.0 if "3.0" in model or "Vida" in model else 1.5)

    instances: Study = []
    instance_no_in_study = 0
    for series_no, size in enumerate(sizes, start=1):
        series_uid = _uid(rng)
        series_desc = series_descs[(series_no - 1) % len(series_descs)]
        sm = min(59, m + series_no * 2)
        series_time = _tm(h, sm, s)
        protocol = f"{desc} / {series_desc}"
        series: Instance = {
            "00080021": _v("DA", study_date),
            "00080031": _v("TM", series_time),
            "0008103E": _v("LO", series_desc),
            "00180015": _v("CS", body_part),
            "00181030": _v("LO", protocol),
            "0020000E": _v("UI", series_uid),
            "00200011": _v("IS", series_no),
            "00185100": _v("CS", "HFS" if body_part != "KNEE" else "FFS"),
            "00280002": _v("US", 1),
            "00280004": _v("CS", "MONOCHROME2"),
            "00280100": _v("US", 16),
            "00280101": _v("US", 12),
            "00280102": _v("US", 11),
            "00280103": _v("US", 0 if modality == "MR" else 1),
        }
        if laterality:
            series["00200060"] = _v("CS", laterality)
        if modality == "CT":
            kvp = rng.choice([80.0, 100.0, 120.0, 140.0])
            thickness = rng.choice([0.6, 1.0, 1.5, 3.0, 5.0])
            series |= {
                "00180060": _v("DS", kvp),
                "00180050": _v("DS", thickness),
                "00180088": _v("DS", thickness),
                "00181100": _v("DS", round(rng.uniform(300, 500), 1)),
                "00181120": _v("DS", 0.0),
                "00181140": _v("CS", "CW"),
                "00181160": _v("SH", "FL01"),
                "00181210": _v("SH", rng.choice(["Br40d", "B70f", "H31s", "I30f"])),
                "00280030": _v("DS", *([round(rng.uniform(0.5, 0.98), 6)] * 2)),
                "00281052": _v("DS", -1024.0),
                "00281053": _v("DS", 1.0),
            }
            if agent:
                series["00180010"] = _v("LO", agent)
        else:
            thickness = rng.choice([1.0, 3.0, 4.0, 5.0])
            seq = rng.choice([["SE"], ["GR"], ["SE", "IR"], ["EP"]])
            series |= {
                "00180020": _v("CS", *seq),
                "00180021": _v("CS", *rng.choice([["SK", "SP"], ["SP"], ["SK", "OSP"]])),
                "00180050": _v("DS", thickness),
                "00180080": _v("DS", float(rng.choice([500, 2200, 3500, 4800, 9000]))),
                "00180081": _v("DS", float(rng.choice([9, 15, 30, 84, 101]))),
                "00180084": _v("DS", 123.2),
                "00180088": _v("DS", thickness + 0.3),
                "00180091": _v("IS", rng.choice([1, 8, 15, 17])),
                "00180095": _v("DS", float(rng.choice([130, 200, 250, 296]))),
                "00181250": _v("SH", "Head/Neck 20" if body_part == "HEAD" else "Flex Large"),
                "00181314": _v("DS", float(rng.choice([8, 90, 120, 150, 180]))),
                "00280030": _v("DS", *([round(rng.uniform(0.3, 1.0), 6)] * 2)),
            }
            if "IR" in seq:
                series["00180082"] = _v("DS", 2500.0)
        rows = 512 if modality == "CT" else rng.choice([256, 320, 384, 512])

        for i in range(1, size + 1):
            instance_no_in_study += 1
            z = round(-100.0 + i * float(series["00180050"]["Value"][0]), 2)
            acq = _tm(h, sm, min(59, s + i // 60), rng.randint(0, 999999))
            inst: Instance = {
                "00080008": _v("CS", "ORIGINAL", "PRIMARY", "AXIAL" if modality == "CT" else "M"),
                "00080012": _v("DA", study_date),
                "00080013": _v("TM", acq),
                "00080016": _v("UI", SOP_CLASS[modality]),
                "00080018": _v("UI", _uid(rng)),
                "00080022": _v("DA", study_date),
                "00080023": _v("DA", study_date),
                "00080032": _v("TM", acq),
                "00080033": _v("TM", acq),
                "00200012": _v("IS", 1),
                "00200013": _v("IS", i),
                "00200032": _v("DS", -250.0, -180.5, z),
                "00200037": _v("DS", 1.0, 0.0, 0.0, 0.0, 1.0, 0.0),
                "00201041": _v("DS", z),
                "00280010": _v("US", rows),
                "00280011": _v("US", rows),
                "00281050": _v("DS", 40.0 if modality == "CT" else float(rng.randint(300, 900))),
                "00281051": _v("DS", 400.0 if modality == "CT" else float(rng.randint(600, 1800))),
            }
            if modality == "CT":
                current = rng.randint(80, 450)
                inst |= {
                    "00181130": _v("DS", 150.0),
                    "00181150": _v("IS", 500),
                    "00181151": _v("IS", current),
                    "00181152": _v("IS", current // 2),
                    "00189345": _v("FD", round(rng.uniform(2.0, 25.0), 4)),
                }
            else:
                inst["00180083"] = _v("DS", 1.0)  # NumberOfAverages
                inst["00180093"] = _v("DS", 80.0)  # PercentSampling
                inst["00180094"] = _v("DS", 100.0)  # PercentPhaseFieldOfView
                inst["00181310"] = _v("US", 0, rows, rows, 0)  # AcquisitionMatrix
                inst["00181316"] = _v("DS", round(rng.uniform(0.5, 3.2), 4))  # SAR
            merged = study_common | series | inst
            instances.append({k: merged[k] for k in sorted(merged)})
    return instances


def generate(scenario: Scenario | str, seed: int = DEFAULT_SEED) -> list[Study]:
    """The scenario's studies, each a list of DICOM JSON instance dicts in arrival order."""
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    # One RNG stream per (seed, scenario shape): the same seed gives the same workload everywhere.
    rng = random.Random(f"{seed}:{sc.studies}x{sc.instances_per_study}:{sc.series_per_study}")
    patients = [_patient(rng, n) for n in range(max(1, sc.studies * 3 // 4))]
    return [_study(rng, sc, n, rng.choice(patients)) for n in range(sc.studies)]


def digest(studies: list[Study]) -> str:
    """sha256 of the canonical JSON of a workload (identical across processes and venvs)."""
    h = hashlib.sha256()
    for study in studies:
        for inst in study:
            h.update(json.dumps(inst, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def tag_counts(studies: list[Study]) -> tuple[int, int]:
    """(min, max) top-level tags per instance."""
    counts = [len(i) for s in studies for i in s]
    return min(counts), max(counts)


if __name__ == "__main__":
    for key, sc in SCENARIOS.items():
        wl = generate(sc)
        print(key, sc.label, "instances:", sum(map(len, wl)), "tags/instance:", tag_counts(wl))
        print("  sha256:", digest(wl))
