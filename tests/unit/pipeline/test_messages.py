import json
from pathlib import Path

import jsonschema
import orjson
import pytest

from streamer.errors import (
    InvalidInstanceError,
    InvalidMessageError,
    MessageKeyError,
    OversizedRecordError,
)
from streamer.messages import EndOfStudy, Instance, decode, encode_marker
from tests.dicom_factory import make_instance, study_uid

SCHEMAS = Path(__file__).parents[3] / "schemas"


def schema(name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    return doc


def test_instance_decodes_and_keeps_uids() -> None:
    uid = study_uid(1)
    msg = decode(uid.encode(), orjson.dumps(make_instance(uid, sop="1.2.3")))
    assert isinstance(msg, Instance)
    assert msg.study_uid == uid
    assert msg.key.sop_uid == "1.2.3"
    assert orjson.loads(msg.slim)["0020000D"]["Value"] == [uid]


def test_marker_round_trip() -> None:
    uid = study_uid(2)
    msg = decode(uid.encode(), encode_marker(uid, 3))
    assert msg == EndOfStudy(study_uid=uid, instance_count=3)
    assert decode(uid.encode(), encode_marker(uid, None)) == EndOfStudy(uid, None)


def test_a_record_without_key_is_refused() -> None:
    uid = study_uid(2)
    with pytest.raises(MessageKeyError, match="no key"):
        decode(None, orjson.dumps(make_instance(uid)))
    with pytest.raises(MessageKeyError, match="no key"):
        decode(None, encode_marker(uid, None))


def test_invalid_utf8_and_deep_nesting_have_reasons_a_user_understands() -> None:
    with pytest.raises(InvalidMessageError, match="not valid UTF-8"):
        decode(b"k", b'{"a": "\xff\xfe"}')
    with pytest.raises(InvalidMessageError, match="deeper than 1024"):
        decode(b"k", b"[" * 10_000 + b"]" * 10_000)


def test_records_above_the_size_limit_are_refused() -> None:
    uid = study_uid(2)
    value = orjson.dumps(make_instance(uid))
    assert isinstance(decode(uid.encode(), value, max_bytes=len(value)), Instance)
    with pytest.raises(OversizedRecordError, match="STREAMER_MAX_RECORD_BYTES"):
        decode(uid.encode(), value, max_bytes=len(value) - 1)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'"text"', "not an object"),
        (None, "no value"),
        (b'{"marker": "start"}', "must be"),
        (b'{"marker": "end-of-study"}', "study_instance_uid"),
        (
            b'{"marker": "end-of-study", "study_instance_uid": "1.2", "instance_count": 0}',
            "positive",
        ),
        (
            b'{"marker": "end-of-study", "study_instance_uid": "1.2", "instance_count": "3"}',
            "positive",
        ),
        (b'{"marker": "end-of-study", "study_instance_uid": "1.2", "extra": 1}', "unknown fields"),
    ],
)
def test_bad_values_are_invalid_messages(value: bytes | None, fragment: str) -> None:
    with pytest.raises(InvalidMessageError, match=fragment):
        decode(None, value)


def test_instance_without_study_uid_is_invalid_instance() -> None:
    doc = make_instance(study_uid(3))
    del doc["0020000D"]
    with pytest.raises(InvalidInstanceError):
        decode(study_uid(3).encode(), orjson.dumps(doc))


def test_key_must_match_study_uid() -> None:
    doc = make_instance(study_uid(4))
    with pytest.raises(InvalidMessageError, match="does not match"):
        decode(study_uid(5).encode(), orjson.dumps(doc))


def test_examples_validate_against_schemas() -> None:
    instance = schema("dicom-instance.schema.json")
    marker = schema("end-of-study-marker.schema.json")
    headers = schema("dead-letter-headers.schema.json")
    uid = study_uid(6)
    jsonschema.validate(make_instance(uid), instance)
    jsonschema.validate(orjson.loads(encode_marker(uid, 2)), marker)
    jsonschema.validate(orjson.loads(encode_marker(uid, None)), marker)
    jsonschema.validate(
        {
            "error-type": "InvalidMessageError",
            "error-message": "value is not JSON",
            "source-topic": "dicom.instances",
            "source-partition": "0",
            "source-offset": "17",
        },
        headers,
    )
    bad = make_instance(uid)
    del bad["00080018"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, instance)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {"marker": "end-of-study", "study_instance_uid": uid, "instance_count": 0}, marker
        )


def test_real_pydicom_file_validates_against_instance_schema() -> None:
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    doc = dcmread(path, stop_before_pixels=True).to_json_dict()
    jsonschema.validate(doc, schema("dicom-instance.schema.json"))
