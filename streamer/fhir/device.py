"""Device (FHIR R4B) from the General Equipment module (PS3.3 C.7.5.1), one per series' equipment.

manufacturer (0008,0070); deviceName model-name (0008,1090) and user-friendly-name (0008,1010); serialNumber and
an identifier (0018,1000); DeviceUID (0018,1002) as ``urn:dicom:uid`` identifier; every SoftwareVersions
(0018,1020) value as version[]; owner InstitutionName (0008,0080) and location InstitutionalDepartmentName
(0008,1040) as Reference.display; udiCarrier.carrierHRF from UDISequence (0018,100A) > UniqueDeviceIdentifier
(0018,1009); type = the series Modality (DCM); property SpatialResolution (0018,1050) in mm; note with the last
calibration DateOfLastCalibration/TimeOfLastCalibration (0018,1200)/(0018,1201).

Id (default): DeviceUID, else manufacturer + model + serial number (when a serial exists), else
manufacturer + model + station scoped to the study. No equipment attribute at all: no Device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streamer.dicom import json_model as jm
from streamer.dicom import tags as t
from streamer.dicom import values as dv
from streamer.fhir import ids
from streamer.fhir import terminology as _codes
from streamer.fhir.common import UCUM, V2_0203, clean_text, concept, decimal
from streamer.fhir.context import StudyContext, tag_label

_MM = {"system": UCUM, "code": "mm", "unit": "mm"}


def build_device(
    ctx: StudyContext, insts: Sequence[jm.Dataset], modality: str
) -> dict[str, Any] | None:
    """The Device of one series' equipment, or None when no equipment attribute is present."""
    manufacturer = clean_text(ctx.text(insts, t.Manufacturer, "Manufacturer"))
    model = clean_text(ctx.text(insts, t.ManufacturerModelName, "ManufacturerModelName"))
    station = clean_text(ctx.text(insts, t.StationName, "StationName"))
    serial = clean_text(ctx.text(insts, t.DeviceSerialNumber, "DeviceSerialNumber"))
    device_uid = clean_text(ctx.text(insts, t.DeviceUID, "DeviceUID"))
    if not (manufacturer or model or station or serial or device_uid):
        return None
    if device_uid:
        parts: tuple[str, ...] = ("uid", device_uid)
    elif serial:
        parts = ("serial", manufacturer or "", model or "", serial)
    else:
        parts = ("station", ctx.study_uid, manufacturer or "", model or "", station or "")
    rid = ids.resource_id("Device", ctx.options, ctx.view, "", parts)
    device: dict[str, Any] = {"resourceType": "Device", "id": rid}
    identifiers: list[dict[str, Any]] = []
    if device_uid:
        identifiers.append(
            {"use": "official", "system": "urn:dicom:uid", "value": f"urn:oid:{device_uid}"}
        )
    if serial:
        identifiers.append(
            {"use": "official", "type": concept(V2_0203, "SNO", "Serial Number"), "value": serial}
        )
    if identifiers:
        device["identifier"] = identifiers
    udis = [
        {"carrierHRF": udi}
        for ds in insts[:1]
        for item in jm.items(ds, t.UDISequence)
        if (udi := clean_text(jm.first(item, t.UniqueDeviceIdentifier)))
    ]
    if udis:
        device["udiCarrier"] = udis
    if manufacturer:
        device["manufacturer"] = manufacturer
    if serial:
        device["serialNumber"] = serial
    names = []
    if model:
        names.append({"name": model, "type": "model-name"})
    if station:
        names.append({"name": station, "type": "user-friendly-name"})
    if names:
        device["deviceName"] = names
    if model:
        device["modelNumber"] = model
    device["type"] = {"coding": [_codes.modality_coding(modality)]}
    versions = [
        {"value": v}
        for v in dict.fromkeys(
            clean_text(s) for s in ctx.texts(insts, t.SoftwareVersions, "SoftwareVersions")
        )
        if v
    ]
    if versions:
        device["version"] = versions
    resolution = ctx.parsed(insts, t.SpatialResolution, "SpatialResolution", dv.parse_ds)
    if resolution is not None:
        device["property"] = [
            {
                "type": {"text": "spatial resolution"},
                "valueQuantity": [{"value": decimal(resolution), **_MM}],
            }
        ]
    institution = clean_text(ctx.text(insts, t.InstitutionName, "InstitutionName"))
    if institution:
        device["owner"] = {"display": institution}
    department = clean_text(
        ctx.text(insts, t.InstitutionalDepartmentName, "InstitutionalDepartmentName")
    )
    if department:
        device["location"] = {"display": department}
    calibration = _calibration(ctx, insts)
    if calibration:
        device["note"] = [{"text": f"Last calibration: {calibration}"}]
    return device


def _calibration(ctx: StudyContext, insts: Sequence[jm.Dataset]) -> str | None:
    dates = ctx.texts(insts, t.DateOfLastCalibration, "DateOfLastCalibration")
    times = ctx.texts(insts, t.TimeOfLastCalibration, "TimeOfLastCalibration")
    if not dates:
        return None
    date = dv.parse_da(dates[-1])
    if date is None:
        ctx.warnings.add(
            f"{tag_label('DateOfLastCalibration', t.DateOfLastCalibration)}: invalid value dropped"
        )
        return None
    time = dv.parse_tm(times[-1]) if len(times) == len(dates) else None
    if time is None and len(times) == len(dates):
        ctx.warnings.add(
            f"{tag_label('TimeOfLastCalibration', t.TimeOfLastCalibration)}: invalid value dropped"
        )
    return f"{date} {time.iso()}" if time else date
