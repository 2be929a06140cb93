"""The library API, a drop-in for the seed dicom2fhir: DICOM JSON dicts or files -> FHIR R4B Bundles (see :mod:`.api`)."""

from streamer.library.api import (
    convert_directory,
    convert_instances,
    from_directory,
    from_directory_json,
    from_generator,
    from_generator_json,
    iter_bundles_from_directory,
    iter_bundles_from_generator,
    iter_results_from_directory,
    iter_results_from_generator,
)
from streamer.library.config import KNOWN_KEYS, LibraryConfig, options_from_config, parse_config
from streamer.library.report import ConversionReport, SkippedFile

__all__ = [
    "KNOWN_KEYS",
    "ConversionReport",
    "LibraryConfig",
    "SkippedFile",
    "convert_directory",
    "convert_instances",
    "from_directory",
    "from_directory_json",
    "from_generator",
    "from_generator_json",
    "iter_bundles_from_directory",
    "iter_bundles_from_generator",
    "iter_results_from_directory",
    "iter_results_from_generator",
    "options_from_config",
    "parse_config",
]
