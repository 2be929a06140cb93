"""DICOM JSON (PS3.18 Annex F): tags, accessors, values, instance identity and slimming, files."""
