"""streamer: DICOM JSON -> FHIR R4B transaction Bundles, streamed through Kafka or as a library.

Library use (drop-in for the dicom2fhir seed; see :mod:`streamer.library`)::

    from streamer import from_directory, from_generator
    bundle = await from_directory("some/dir", {"dicom_timezone": "Europe/Berlin"})

The library names are imported lazily, so ``import streamer`` stays cheap for the stream processor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from streamer.library import (
        ConversionReport,
        SkippedFile,
        convert_directory,
        convert_instances,
        from_directory,
        from_generator,
        iter_bundles_from_directory,
        iter_bundles_from_generator,
        iter_results_from_directory,
        iter_results_from_generator,
    )

__all__ = [
    "ConversionReport",
    "SkippedFile",
    "__version__",
    "convert_directory",
    "convert_instances",
    "from_directory",
    "from_generator",
    "iter_bundles_from_directory",
    "iter_bundles_from_generator",
    "iter_results_from_directory",
    "iter_results_from_generator",
]

_LAZY = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    """Import the library API on first use (PEP 562)."""
    if name in _LAZY:
        from streamer import library

        return getattr(library, name)
    raise AttributeError(f"module 'streamer' has no attribute {name!r}")
