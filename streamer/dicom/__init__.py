"""DICOM JSON (PS3.18 Annex F) access: tags, accessors, value parsing."""
