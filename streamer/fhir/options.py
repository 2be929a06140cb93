"""Mapping options: the frozen knobs every mapper reads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

# id_function(resource_type, dataset_view, extra) -> id. Same call shape as the seed library's
# `id_function(resource_type, ds, extra="")`; `dataset_view` answers attribute access by DICOM keyword.
IdFunction = Callable[..., str]


@dataclass(frozen=True, slots=True)
class MappingOptions:
    """How DICOM JSON becomes FHIR; built once (from Settings or the library config) and passed down."""

    dicom_timezone: str | None = (
        None  # IANA zone used when (0008,0201) is absent; None = leave naive -> date only
    )
    add_instances: bool = False  # emit ImagingStudy.series.instance[]
    add_vital_signs: bool = True  # body weight / height Observations
    id_function: IdFunction | None = None  # overrides the default deterministic ids
    profile: Literal["core", "mii"] = "core"
    wado_base_url: str | None = (
        None  # when set, an Endpoint (dicom-wado-rs) is added and referenced
    )
