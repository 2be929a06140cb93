"""Device mapping and its link from the series."""

from __future__ import annotations

from typing import Any

from streamer.fhir import MappingOptions, build_study_bundle
from tests.unit.fhir._fhir_helpers import inst, item, one, resources

OPTS = MappingOptions()
EQUIP: dict[str, Any] = {
    "Manufacturer": "ACME",
    "ManufacturerModelName": "Scanner 9",
    "StationName": "CT01",
    "DeviceSerialNumber": "SN-42",
    "SoftwareVersions": ("1.0", "2.1"),
    "InstitutionName": "General Hospital",
    "InstitutionalDepartmentName": "Radiology",
    "SpatialResolution": "0.5",
    "DateOfLastCalibration": "20240101",
    "TimeOfLastCalibration": "120000",
}


def bundle_of(*instances: dict[str, Any]) -> dict[str, Any]:
    return build_study_bundle(list(instances), OPTS).bundle


def test_device_fields() -> None:
    udi = item(UniqueDeviceIdentifier="(01)00643169007222(17)160712(21)21A0000000")
    device = one(bundle_of(inst(1, DeviceUID="1.2.3.77", UDISequence=[udi], **EQUIP)), "Device")
    assert device["manufacturer"] == "ACME"
    assert device["deviceName"] == [
        {"name": "Scanner 9", "type": "model-name"},
        {"name": "CT01", "type": "user-friendly-name"},
    ]
    assert device["serialNumber"] == "SN-42"
    assert device["identifier"][0] == {
        "use": "official",
        "system": "urn:dicom:uid",
        "value": "urn:oid:1.2.3.77",
    }
    assert (
        device["identifier"][1]["value"] == "SN-42"
        and device["identifier"][1]["type"]["coding"][0]["code"] == "SNO"
    )
    assert device["version"] == [{"value": "1.0"}, {"value": "2.1"}]
    assert device["owner"] == {"display": "General Hospital"}
    assert device["location"] == {"display": "Radiology"}
    assert device["udiCarrier"] == [{"carrierHRF": "(01)00643169007222(17)160712(21)21A0000000"}]
    assert device["type"]["coding"][0]["code"] == "CT"
    assert device["property"][0]["valueQuantity"] == [
        {"value": 0.5, "system": "http://unitsofmeasure.org", "code": "mm", "unit": "mm"}
    ]
    assert device["note"] == [{"text": "Last calibration: 2024-01-01 12:00:00"}]


def test_device_id_by_uid_then_serial_then_station() -> None:
    by_uid_a = one(bundle_of(inst(1, DeviceUID="1.2.3.77", Manufacturer="A")), "Device")["id"]
    by_uid_b = one(
        bundle_of(inst(1, study="1.2.9", series="1.2.9.1", DeviceUID="1.2.3.77", Manufacturer="B")),
        "Device",
    )["id"]
    assert by_uid_a == by_uid_b  # the same device in every study
    s1 = one(bundle_of(inst(1, Manufacturer="A", DeviceSerialNumber="1")), "Device")["id"]
    s2 = one(
        bundle_of(
            inst(1, study="1.2.9", series="1.2.9.1", Manufacturer="A", DeviceSerialNumber="1")
        ),
        "Device",
    )["id"]
    assert s1 == s2
    st1 = one(bundle_of(inst(1, StationName="CT01")), "Device")["id"]
    st2 = one(bundle_of(inst(1, study="1.2.9", series="1.2.9.1", StationName="CT01")), "Device")[
        "id"
    ]
    assert st1 != st2  # station only: scoped to the study


def test_no_equipment_no_device_no_performer() -> None:
    bundle = bundle_of(inst(1))
    assert resources(bundle, "Device") == []
    assert "performer" not in one(bundle, "ImagingStudy")["series"][0]


def test_one_device_per_equipment_referenced_by_each_series() -> None:
    bundle = bundle_of(
        inst(1, series="1.2.5.1", Modality="PT", DeviceSerialNumber="PET-1", Manufacturer="X"),
        inst(
            1,
            series="1.2.5.2",
            Modality="CT",
            SeriesNumber=2,
            DeviceSerialNumber="CT-1",
            Manufacturer="X",
        ),
        inst(
            1,
            series="1.2.5.3",
            Modality="CT",
            SeriesNumber=3,
            DeviceSerialNumber="CT-1",
            Manufacturer="X",
        ),
    )
    devices = resources(bundle, "Device")
    assert sorted(d["serialNumber"] for d in devices) == ["CT-1", "PET-1"]
    study = one(bundle, "ImagingStudy")
    refs = [s["performer"][0]["actor"]["reference"] for s in study["series"]]
    assert refs[1] == refs[2] != refs[0]
    assert {f"urn:uuid:{d['id']}" for d in devices} == set(refs)
