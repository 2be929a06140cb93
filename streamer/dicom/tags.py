"""The one table of DICOM tags the code reads, as the upper-case ``GGGGEEEE`` keys of DICOM JSON (PS3.18 F.2).

Each name is the attribute's keyword in the DICOM data dictionary (PS3.6) and each value its tag number, so
``t.PatientID`` reads as the attribute it is. Code refers to tags only through this module (imported as
``from streamer.dicom import tags as t``), never by writing the hex string again: slimming keeps exactly the
tags listed in ``streamer.dicom.instance.KEEP_TAGS``, and a test checks that every ``t.<Name>`` used is there.
"""

from __future__ import annotations

from typing import Final

# --- identity (PS3.3 C.12.1 SOP Common, C.7.2.1 General Study, C.7.3.1 General Series) ---
SOPClassUID: Final = "00080016"
SOPInstanceUID: Final = "00080018"
StudyInstanceUID: Final = "0020000D"
SeriesInstanceUID: Final = "0020000E"
InstanceNumber: Final = "00200013"
SeriesNumber: Final = "00200011"
StudyID: Final = "00200010"

# --- study ---
StudyDate: Final = "00080020"
StudyTime: Final = "00080030"
SeriesDate: Final = "00080021"
SeriesTime: Final = "00080031"
AcquisitionDate: Final = "00080022"
AcquisitionTime: Final = "00080032"
AcquisitionDateTime: Final = "0008002A"
TimezoneOffsetFromUTC: Final = "00080201"
AccessionNumber: Final = "00080050"
IssuerOfAccessionNumberSequence: Final = "00080051"
Modality: Final = "00080060"
ModalitiesInStudy: Final = "00080061"
ReferringPhysicianName: Final = "00080090"
StudyDescription: Final = "00081030"
SeriesDescription: Final = "0008103E"
ProcedureCodeSequence: Final = "00081032"
PerformingPhysicianName: Final = "00081050"
NameOfPhysiciansReadingStudy: Final = "00081060"
OperatorsName: Final = "00081070"
CodingSchemeIdentificationSequence: Final = "00080110"
ImageType: Final = "00080008"
InstitutionName: Final = "00080080"
InstitutionalDepartmentName: Final = "00081040"
StationName: Final = "00081010"
Manufacturer: Final = "00080070"
ManufacturerModelName: Final = "00081090"
DeviceSerialNumber: Final = "00181000"
DeviceUID: Final = "00181002"
SoftwareVersions: Final = "00181020"
UDISequence: Final = "0018100A"
UniqueDeviceIdentifier: Final = "00181009"
SpatialResolution: Final = "00181050"
DateOfLastCalibration: Final = "00181200"
TimeOfLastCalibration: Final = "00181201"
BodyPartExamined: Final = "00180015"
AnatomicRegionSequence: Final = "00082218"
Laterality: Final = "00200060"
ImageLaterality: Final = "00200062"
ContentLabel: Final = "00700080"
ConceptNameCodeSequence: Final = "0040A043"
DocumentTitle: Final = "00420010"
ReferencedRequestSequence: Final = "0040A370"
RequestAttributesSequence: Final = "00400275"
ReasonForTheRequestedProcedure: Final = "00401002"
ReasonForRequestedProcedureCodeSequence: Final = "0040100A"
ReasonForPerformedProcedureCodeSequence: Final = "00401012"
RequestedProcedureCodeSequence: Final = "00321064"
RequestedProcedureID: Final = "00401001"
ScheduledProcedureStepID: Final = "00400009"

# --- code sequence item attributes (PS3.3 8.8) ---
CodeValue: Final = "00080100"
CodingSchemeDesignator: Final = "00080102"
CodingSchemeVersion: Final = "00080103"
CodeMeaning: Final = "00080104"
LongCodeValue: Final = "00080119"
URNCodeValue: Final = "00080120"
CodingSchemeUID: Final = "0008010C"
CodingSchemeURL: Final = "0008010E"

# --- HL7v2 hierarchic designators (PS3.3 10.14) ---
LocalNamespaceEntityID: Final = "00400031"
UniversalEntityID: Final = "00400032"
UniversalEntityIDType: Final = "00400033"
IdentifierTypeCode: Final = "00400035"

# --- patient (PS3.3 C.7.1.1, C.7.2.2) ---
PatientName: Final = "00100010"
PatientID: Final = "00100020"
IssuerOfPatientID: Final = "00100021"
TypeOfPatientID: Final = "00100022"
IssuerOfPatientIDQualifiersSequence: Final = "00100024"
PatientBirthDate: Final = "00100030"
PatientSex: Final = "00100040"
OtherPatientIDs: Final = "00101000"
OtherPatientIDsSequence: Final = "00101002"
PatientSize: Final = "00101020"
PatientWeight: Final = "00101030"
PatientAddress: Final = "00101040"
PatientMotherBirthName: Final = "00101060"
CountryOfResidence: Final = "00102150"
RegionOfResidence: Final = "00102152"
PatientTelephoneNumbers: Final = "00102154"

# --- X-ray exposure, CT and projection radiography (CT Image, X-Ray Acquisition Dose, DX Positioning modules) ---
KVP: Final = "00180060"
ExposureTime: Final = "00181150"
ExposureTimeInuS: Final = "00188150"
XRayTubeCurrent: Final = "00181151"
XRayTubeCurrentInuA: Final = "00188151"
Exposure: Final = "00181152"
ExposureInuAs: Final = "00181153"
CTDIvol: Final = "00189345"
ConvolutionKernel: Final = "00181210"
ViewPosition: Final = "00185101"

# --- MR (MR Image module) ---
ScanningSequence: Final = "00180020"
SequenceVariant: Final = "00180021"
RepetitionTime: Final = "00180080"
EchoTime: Final = "00180081"
InversionTime: Final = "00180082"
MagneticFieldStrength: Final = "00180087"
FlipAngle: Final = "00181314"

# --- ultrasound (US Region Calibration, US Image modules) ---
SequenceOfUltrasoundRegions: Final = "00186011"
TransducerFrequency: Final = "00186030"
TransducerType: Final = "00186031"
PulseRepetitionFrequency: Final = "00186032"
UltrasoundColorDataPresent: Final = "00280014"

# --- NM / PET (NM Isotope, PET Series, PET Isotope modules) ---
Radiopharmaceutical: Final = "00180031"
RadiopharmaceuticalStartTime: Final = "00181072"
RadionuclideTotalDose: Final = "00181074"
RadionuclideHalfLife: Final = "00181075"
RadiopharmaceuticalStartDateTime: Final = "00181078"
EnergyWindowInformationSequence: Final = "00540012"
EnergyWindowRangeSequence: Final = "00540013"
EnergyWindowLowerLimit: Final = "00540014"
EnergyWindowUpperLimit: Final = "00540015"
RadiopharmaceuticalInformationSequence: Final = "00540016"
RadionuclideCodeSequence: Final = "00540300"
RadiopharmaceuticalCodeSequence: Final = "00540304"
SeriesType: Final = "00541000"
Units: Final = "00541001"

# --- contrast (Contrast/Bolus module) ---
ContrastBolusAgent: Final = "00180010"
ContrastBolusAgentSequence: Final = "00180012"

# --- image geometry and content (Image Plane, Image Pixel, General Image modules) ---
SliceThickness: Final = "00180050"
PixelSpacing: Final = "00280030"
BurnedInAnnotation: Final = "00280301"
# enhanced multi-frame images carry pixel spacing and slice thickness in a functional group sequence
SharedFunctionalGroupsSequence: Final = "52009229"
PixelMeasuresSequence: Final = "00289110"
