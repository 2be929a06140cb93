"""The bad-input corpus: every kind of unusable or odd input record and its fate.

Each case builds its records for a study number ``n`` (so cases never share UIDs) and states the
fate: dead-lettered with which ``error-type``, or converted (with which warning, if any), or ignored.
The unit test runs every case through the processor with in-memory ports, the broker test through
``python -m streamer`` on a real broker, and the README's table is made from this list
(``python -m tests.corpus`` prints it; a test keeps the README equal to it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from streamer.messages import encode_marker
from tests.dicom_factory import element, make_instance, series_uid, sop_uid, study_uid

Record = tuple[bytes | None, bytes | None]

# Settings the corpus runs with (small limits, so the size cases stay small).
MAX_RECORD_BYTES = 200_000
MAX_INSTANCES_PER_STUDY = 20


@dataclass(frozen=True)
class Case:
    """One kind of input and what must become of it."""

    kind: str
    build: Callable[[int], list[Record]]
    dlq: tuple[str, ...] = ()  # error-type of each dead letter the case causes, in order
    # Instances of study n in its Bundle; None: no Bundle for study n.
    bundle_instances: int | None = None
    warning: str | None = None  # a warning naming this (a tag, never a value) is logged for study n
    # The runner closes study n with a marker after the records (when a Bundle is expected).
    marker: bool = True
    fate: str = ""  # the README's words

    def fate_text(self) -> str:
        if self.fate:
            return self.fate
        if self.dlq:
            return "dead-letter topic, `error-type` " + ", ".join(f"`{t}`" for t in self.dlq)
        if self.warning is not None:
            return f"converted; warning naming `{self.warning}`"
        return "converted"


def doc(n: int, i: int = 0, **extra: Any) -> dict[str, Any]:
    return make_instance(study_uid(n), series_uid(n), sop_uid(n, i), number=i + 1) | extra


def rec(n: int, value: Any, key: bytes | str | None = "study") -> Record:
    """A record of study n: the key is its StudyInstanceUID unless given."""
    k = study_uid(n).encode() if key == "study" else key
    raw = value if isinstance(value, bytes) or value is None else orjson.dumps(value)
    assert not isinstance(k, str)
    return (k, raw)


def good(n: int, count: int = 1) -> list[Record]:
    return [rec(n, doc(n, i)) for i in range(count)]


def without(tag: str) -> Callable[[int], list[Record]]:
    def build(n: int) -> list[Record]:
        d = doc(n)
        del d[tag]
        return [rec(n, d)]

    return build


def with_uid(tag: str, uid: str) -> Callable[[int], list[Record]]:
    def build(n: int) -> list[Record]:
        d = doc(n) | {tag: element("UI", uid)}
        key = uid.encode() if tag == "0020000D" else study_uid(n).encode()
        return [(key, orjson.dumps(d))]

    return build


def with_element(tag: str, elem: Any) -> Callable[[int], list[Record]]:
    return lambda n: [rec(n, doc(n) | {tag: elem})]


def marker(n: int, **fields: Any) -> Record:
    body = {"marker": "end-of-study", "study_instance_uid": study_uid(n)} | fields
    return rec(n, {k: v for k, v in body.items() if v is not None})


def nested(depth: int) -> dict[str, Any]:
    item: dict[str, Any] = {}
    for _ in range(depth):
        item = {"00081032": {"vr": "SQ", "Value": [item]}}
    return item


DLQ_INSTANCE = ("InvalidInstanceError",)
DLQ_MESSAGE = ("InvalidMessageError",)
DLQ_MARKER = ("InvalidMarkerError",)
DLQ_KEY = ("MessageKeyError",)

CASES: list[Case] = [
    # ---- not a DICOM JSON object at all
    Case("value is not JSON", lambda n: [rec(n, b"{not json")], DLQ_MESSAGE),
    Case("value is a JSON array", lambda n: [rec(n, b"[1, 2, 3]")], DLQ_MESSAGE),
    Case("value is a JSON number", lambda n: [rec(n, b"42")], DLQ_MESSAGE),
    Case("value is JSON null", lambda n: [rec(n, b"null")], DLQ_MESSAGE),
    Case("value is a JSON string", lambda n: [rec(n, b'"text"')], DLQ_MESSAGE),
    Case("no value (tombstone)", lambda n: [rec(n, None)], DLQ_MESSAGE),
    Case("value is not valid UTF-8", lambda n: [rec(n, b'{"a": "\xff\xfe"}')], DLQ_MESSAGE),
    Case(
        "JSON nested 10,000 levels deep",
        lambda n: [rec(n, b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}")],
        DLQ_MESSAGE,
    ),
    Case("empty JSON object", lambda n: [rec(n, {})], DLQ_INSTANCE),
    Case(
        f"record larger than STREAMER_MAX_RECORD_BYTES ({MAX_RECORD_BYTES:,} in the tests)",
        lambda n: [rec(n, doc(n) | {"00081030": element("LO", "x" * MAX_RECORD_BYTES)})],
        ("OversizedRecordError",),
    ),
    # ---- keys
    Case("record without key", lambda n: [rec(n, doc(n), key=None)], DLQ_KEY),
    Case(
        "key is another StudyInstanceUID",
        lambda n: [rec(n, doc(n), key=study_uid(n + 1000).encode())],
        DLQ_KEY,
    ),
    Case("key is not UTF-8", lambda n: [rec(n, doc(n), key=b"\xff\xfe")], DLQ_KEY),
    # ---- UIDs
    Case("no StudyInstanceUID", without("0020000D"), DLQ_INSTANCE),
    Case("no SeriesInstanceUID", without("0020000E"), DLQ_INSTANCE),
    Case("no SOPInstanceUID", without("00080018"), DLQ_INSTANCE),
    Case("StudyInstanceUID with letters", with_uid("0020000D", "1.2.abc.3"), DLQ_INSTANCE),
    Case("SeriesInstanceUID with a NUL inside", with_uid("0020000E", "1.2\x00.3"), DLQ_INSTANCE),
    Case("SOPInstanceUID with a space inside", with_uid("00080018", "1.2 3.4"), DLQ_INSTANCE),
    Case("SOPInstanceUID with an empty component", with_uid("00080018", "1.2..3"), DLQ_INSTANCE),
    Case(
        "SOPInstanceUID longer than 64 characters",
        with_uid("00080018", "1." * 40 + "1"),
        DLQ_INSTANCE,
    ),
    Case(
        "SOPInstanceUID with a leading zero in a component",
        with_uid("00080018", "1.2.03.4"),
        bundle_instances=1,
        warning="SOPInstanceUID",
    ),
    # ---- markers
    Case(
        "marker of an unknown kind", lambda n: [*good(n), marker(n, marker="start")], DLQ_MARKER, 1
    ),
    Case(
        "marker without study_instance_uid",
        lambda n: [*good(n), rec(n, {"marker": "end-of-study"})],
        DLQ_MARKER,
        1,
    ),
    Case(
        "marker with instance_count 0",
        lambda n: [*good(n), marker(n, instance_count=0)],
        DLQ_MARKER,
        1,
    ),
    Case(
        "marker with a negative instance_count",
        lambda n: [*good(n), marker(n, instance_count=-2)],
        DLQ_MARKER,
        1,
    ),
    Case(
        "marker with instance_count as text",
        lambda n: [*good(n), marker(n, instance_count="3")],
        DLQ_MARKER,
        1,
    ),
    Case("marker with unknown fields", lambda n: [*good(n), marker(n, extra=1)], DLQ_MARKER, 1),
    Case(
        "marker for a study that never gets instances",
        lambda n: [(study_uid(n).encode(), encode_marker(study_uid(n), None))],
        ("EmptyStudyError",),
        marker=False,
        fate="dead-letter topic after the study timeout, `error-type` `EmptyStudyError`",
    ),
    # ---- several instances of one study
    Case(
        "an instance of another patient (PatientID) in a study",
        lambda n: [
            rec(n, doc(n, 0)),
            rec(n, make_instance(study_uid(n), series_uid(n), sop_uid(n, 1), patient_id="OTHER")),
            rec(n, doc(n, 2)),
        ],
        ("PatientConflictError",),
        2,
        fate="dead-letter topic, `error-type` `PatientConflictError`; the study keeps its first patient's instances",
    ),
    Case(
        "the same instance twice (identical)",
        lambda n: [rec(n, doc(n)), rec(n, doc(n))],
        bundle_instances=1,
        fate="the repeat is ignored and counted",
    ),
    Case(
        "the same SOPInstanceUID again with other content",
        lambda n: [
            rec(n, doc(n)),
            rec(n, doc(n) | {"0008103E": element("LO", "changed")}),
        ],
        bundle_instances=1,
        warning="0008103E",
        fate="the later one replaces it; warning naming the changed tags (`0008103E`)",
    ),
    Case(
        f"more instances than STREAMER_MAX_INSTANCES_PER_STUDY ({MAX_INSTANCES_PER_STUDY} in the tests)",
        lambda n: good(n, MAX_INSTANCES_PER_STUDY + 1),
        ("StudyTooLargeError",),
        MAX_INSTANCES_PER_STUDY,
    ),
    # ---- element and value shapes (converted; odd values dropped with a warning)
    Case(
        "StudyDate (DA) malformed",
        with_element("00080020", element("DA", "2024-13-45")),
        bundle_instances=1,
        warning="StudyDate",
    ),
    Case(
        "StudyTime (TM) malformed",
        with_element("00080030", element("TM", "25:99")),
        bundle_instances=1,
        warning="StudyTime",
    ),
    Case(
        "PatientWeight (DS) with a unit",
        with_element("00101030", element("DS", "70kg")),
        bundle_instances=1,
        warning="PatientWeight",
    ),
    Case(
        "InlineBinary that is not base64",
        with_element("7FE00010", {"vr": "OB", "InlineBinary": "!!not base64!!"}),
        bundle_instances=1,
        fate="converted; bulk data is never read",
    ),
    Case(
        "BulkDataURI",
        with_element("7FE00010", {"vr": "OB", "BulkDataURI": "https://pacs.example/bulk/1"}),
        bundle_instances=1,
        fate="converted; bulk data is never read",
    ),
    Case(
        "keys that are not DICOM tags",
        lambda n: [rec(n, doc(n) | {"PatientName": {"vr": "PN"}, "foo": 1})],
        bundle_instances=1,
        warning="not DICOM tags",
    ),
    Case(
        "PN value given as a plain string",
        with_element("00100010", {"vr": "PN", "Value": ["Doe^John"]}),
        bundle_instances=1,
        warning="PatientName",
    ),
    Case(
        "`Value` that is not a list",
        with_element("00081030", {"vr": "LO", "Value": "text"}),
        bundle_instances=1,
        warning="StudyDescription",
    ),
    Case(
        "element that is not a JSON object",
        with_element("00081030", "text"),
        bundle_instances=1,
        warning="StudyDescription",
    ),
    Case(
        "element with a VR that is not a VR",
        with_element("00081030", {"vr": 5, "Value": ["x"]}),
        bundle_instances=1,
        warning="StudyDescription",
    ),
    Case(
        "sequence item that is not an object",
        with_element("00081032", {"vr": "SQ", "Value": ["x", 5]}),
        bundle_instances=1,
        warning="ProcedureCodeSequence",
    ),
    Case(
        "sequence nested 200 levels deep",
        lambda n: [rec(n, json.dumps(doc(n) | nested(200)).encode())],
        bundle_instances=1,
        warning="ProcedureCodeSequence",
    ),
    Case(
        "SeriesNumber (IS) beyond the IS range",
        with_element("00200011", element("IS", 10**12)),
        bundle_instances=1,
        warning="SeriesNumber",
    ),
    Case(
        "StudyDescription (LO) of 100,000 characters",
        with_element("00081030", element("LO", "x" * 100_000)),
        bundle_instances=1,
        warning="StudyDescription",
    ),
    Case(
        "Value: [null]",
        with_element("00081030", {"vr": "LO", "Value": [None]}),
        bundle_instances=1,
        fate="converted; the element has no value",
    ),
    Case(
        "Value: [] (an empty element)",
        with_element("00081030", {"vr": "LO", "Value": []}),
        bundle_instances=1,
        fate="converted; the element has no value",
    ),
]


def readme_table() -> str:
    rows = ["| input | fate |", "|---|---|"]
    rows += [f"| {c.kind} | {c.fate_text()} |" for c in CASES]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(readme_table())
