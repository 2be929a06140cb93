"""Inputs of the golden Bundles: real pydicom files and synthetic instances with every mapped attribute."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streamer.fhir import MappingOptions
from tests.unit.fhir._fhir_helpers import inst, item, pydicom_json

FULL_STUDY = "1.2.826.0.1.3680043.8.498.77"


def synthetic_full() -> list[dict[str, Any]]:
    """Two CT instances of one series carrying every attribute the core mapping reads."""
    common: dict[str, Any] = {
        "study": FULL_STUDY,
        "series": FULL_STUDY + ".1",
        "PatientName": {
            "Alphabetic": "Doe^John^A^Dr.^MD",
            "Ideographic": "ドウ^ジョン",
            "Phonetic": "どう^じょん",
        },
        "PatientID": "PID-1",
        "IssuerOfPatientID": "HOSP",
        "IssuerOfPatientIDQualifiersSequence": [
            item(
                UniversalEntityID="1.2.276.0.76.1",
                UniversalEntityIDType="ISO",
                IdentifierTypeCode="MR",
            )
        ],
        "OtherPatientIDsSequence": [
            item(PatientID="INS-9", IssuerOfPatientID="INSURER", TypeOfPatientID="TEXT")
        ],
        "PatientBirthDate": "19700102",
        "PatientSex": "M",
        "PatientAddress": "Main St 1^^Springfield^IL^62701^USA",
        "PatientTelephoneNumbers": ("+1 555 0100", "+1 555 0101"),
        "PatientMotherBirthName": "Miller^Ann",
        "PatientWeight": "80.5",
        "PatientSize": "1.82",
        "StudyDate": "20240315",
        "StudyTime": "101500.25",
        "SeriesDate": "20240315",
        "SeriesTime": "102000",
        "TimezoneOffsetFromUTC": "+0100",
        "AccessionNumber": "ACC-77",
        "IssuerOfAccessionNumberSequence": [
            item(
                LocalNamespaceEntityID="RIS",
                UniversalEntityID="1.2.276.0.76.2",
                UniversalEntityIDType="ISO",
            )
        ],
        "StudyID": "S-77",
        "StudyDescription": "CT Thorax",
        "SeriesDescription": "Axial 1mm",
        "ProcedureCodeSequence": [
            item(CodeValue="RPID16", CodingSchemeDesignator="RADLEX", CodeMeaning="CT CHEST")
        ],
        "RequestAttributesSequence": [
            item(
                RequestedProcedureID="RP-77",
                ScheduledProcedureStepID="SPS-77",
                # RPID16 repeats the performed ProcedureCodeSequence: listed once; 99HOSP has no known URI
                RequestedProcedureCodeSequence=[
                    item(
                        CodeValue="RPID16", CodingSchemeDesignator="RADLEX", CodeMeaning="CT CHEST"
                    ),
                    item(CodeValue="24627-2", CodingSchemeDesignator="LN", CodeMeaning="CT Chest"),
                    item(
                        CodeValue="CT-T1", CodingSchemeDesignator="99HOSP", CodeMeaning="CT Thorax"
                    ),
                ],
                ReasonForTheRequestedProcedure="suspected pulmonary embolism",
                ReasonForRequestedProcedureCodeSequence=[
                    item(
                        CodeValue="59282003",
                        CodingSchemeDesignator="SCT",
                        CodeMeaning="Pulmonary embolism",
                    )
                ],
            )
        ],
        "ReferringPhysicianName": "Smith^Anna^^Dr.",
        "NameOfPhysiciansReadingStudy": "House^Gregory",
        "PerformingPhysicianName": "Tech^Tom",
        "OperatorsName": "Op^Olga",
        "BodyPartExamined": "CHEST",
        "Laterality": "B",
        "Manufacturer": "ACME",
        "ManufacturerModelName": "Scanner 9",
        "StationName": "CT01",
        "DeviceSerialNumber": "SN-42",
        "DeviceUID": "1.2.826.0.1.3680043.8.498.99",
        "SoftwareVersions": ("1.0", "2.1"),
        "UDISequence": [item(UniqueDeviceIdentifier="(01)00643169007222(17)160712(21)21A0000000")],
        "InstitutionName": "General Hospital",
        "InstitutionalDepartmentName": "Radiology",
        "SpatialResolution": "0.5",
        "DateOfLastCalibration": "20240101",
        "TimeOfLastCalibration": "120000",
        "ImageType": ("ORIGINAL", "PRIMARY", "AXIAL"),
        "KVP": "120",
        "XRayTubeCurrent": "200",
        "ExposureTime": "500",
        "Exposure": "100",
        "CTDIvol": "7.5",
        "ConvolutionKernel": "B30f",
        "SliceThickness": "1.0",
        "PixelSpacing": ("0.7", "0.7"),
        "ContrastBolusAgent": "Iomeprol",
    }
    return [inst(2, **common), inst(1, **common)]


def synthetic_pt() -> list[dict[str, Any]]:
    """A PET instance with a radiopharmaceutical (FDG)."""
    nuclide = item(CodeValue="C-111A1", CodingSchemeDesignator="SRT", CodeMeaning="^18^Fluorine")
    drug = item(
        CodeValue="C-B1031", CodingSchemeDesignator="SRT", CodeMeaning="Fluorodeoxyglucose F^18^"
    )
    rp = item(
        Radiopharmaceutical="Fluorodeoxyglucose",
        RadiopharmaceuticalCodeSequence=[drug],
        RadionuclideCodeSequence=[nuclide],
        RadionuclideTotalDose="370000000",
        RadionuclideHalfLife="6586.2",
        RadiopharmaceuticalStartTime="090000",
    )
    return [
        inst(
            1,
            study="1.2.826.0.1.3680043.8.498.78",
            series="1.2.826.0.1.3680043.8.498.78.1",
            Modality="PT",
            SOPClassUID="1.2.840.10008.5.1.4.1.1.128",
            PatientID="PID-PT",
            PatientName="Roe^Jane",
            PatientSex="F",
            PatientWeight="65",
            StudyDate="20240715",
            StudyTime="093000",
            AcquisitionTime="100000",
            RadiopharmaceuticalInformationSequence=[rp],
            Units="BQML",
            SeriesType=("WHOLE BODY", "IMAGE"),
            Manufacturer="ACME",
            StationName="PET01",
            BodyPartExamined="WHOLEBODY",
        )
    ]


CORE = MappingOptions(
    dicom_timezone="Europe/Berlin",
    add_instances=True,
    wado_base_url="https://pacs.example/dicomweb",
)
MII = MappingOptions(dicom_timezone="Europe/Berlin", add_instances=True, profile="mii")

CASES: dict[str, tuple[Callable[[], list[dict[str, Any]]], MappingOptions]] = {
    "ct": (lambda: [pydicom_json("CT_small.dcm")], CORE),
    "mr": (lambda: [pydicom_json("MR_small.dcm")], CORE),
    "cr_view_position": (lambda: [pydicom_json("dicomdirtests/77654033/CR1/6154")], CORE),
    "pt_radiopharmaceutical": (synthetic_pt, CORE),
    "sr": (lambda: [pydicom_json("test-SR.dcm")], CORE),
    "multiframe_us": (lambda: [pydicom_json("examples_ybr_color.dcm")], CORE),
    "synthetic_full": (synthetic_full, CORE),
    "mii_ct": (lambda: [pydicom_json("CT_small.dcm")], MII),
    "mii_mr": (lambda: [pydicom_json("MR_small.dcm")], MII),
    "mii_pt_radiopharmaceutical": (synthetic_pt, MII),
    "mii_synthetic_full": (synthetic_full, MII),
}
