"""Our Bundle-consistency check, as the HL7 lane uses it: the product's ``streamer.fhir.consistency`` (run on
every finished Bundle), whose rules cover what the HL7 validator does not catch (checked with HAPI 8.8.1).

``expected_full_url`` recomputes the fullUrl rule here, independently of ``ids.full_url``, so a test can show
the product's rule is the documented one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from streamer.fhir import consistency, ids

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def expected_full_url(resource_type: str, rid: str) -> str:
    """The fullUrl of ``resource_type/rid``, computed here independently of ``ids.full_url``."""
    if _UUID.fullmatch(rid):
        return f"urn:uuid:{rid}"
    return f"urn:uuid:{ids.uuid5('fullUrl', resource_type, rid)}"


def consistency_problems(bundle: Mapping[str, Any]) -> list[str]:
    """Every breach the product's check finds, one message each (where, what, and the values involved)."""
    return [str(p) for p in consistency.problems(bundle)]
