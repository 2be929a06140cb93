"""DA/TM/DT/IS/DS/PN parsing and FHIR dateTime assembly (streamer.dicom.values)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from streamer.dicom import values as dv
from streamer.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20240315", "2024-03-15"),
        ("2024.03.15", "2024-03-15"),  # ACR-NEMA
        ("2024-03-15", "2024-03-15"),
        ("202403", "2024-03"),
        ("2024", "2024"),
        (" 20240229 ", "2024-02-29"),
        ("18991231", "1899-12-31"),
        ("20230229", None),  # not a leap year
        ("20241350", None),
        ("20240100", None),
        ("00000101", None),
        ("2024031", None),
        ("abc", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_da(raw: str | None, expected: str | None) -> None:
    assert dv.parse_da(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("101500", "10:15:00"),
        ("101500.123", "10:15:00.123"),
        ("101500.1234567", "10:15:00.123456"),
        ("1015", "10:15:00"),
        ("10", "10:00:00"),
        ("10:15:00", "10:15:00"),  # ACR-NEMA
        ("235960", "23:59:59"),  # leap second clamped
        ("240000", None),
        ("256000", None),
        ("106000", None),
        ("1", None),
        ("ab", None),
        ("", None),
    ],
)
def test_parse_tm(raw: str, expected: str | None) -> None:
    got = dv.parse_tm(raw)
    assert (got.iso() if got else None) == expected


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [
        ("+0100", 60),
        ("-0500", -300),
        ("+0545", 345),
        ("+1400", 840),
        ("-1200", -720),
        ("+01:00", 60),
    ],
)
def test_parse_tz_offset_valid(raw: str, minutes: int) -> None:
    assert dv.parse_tz_offset(raw) == timedelta(minutes=minutes)


@pytest.mark.parametrize("raw", ["+1500", "-1300", "0100", "+0160", "UTC", "", None])
def test_parse_tz_offset_invalid(raw: str | None) -> None:
    assert dv.parse_tz_offset(raw) is None


def test_fhir_datetime_offset_first() -> None:
    t = dv.parse_tm("101500")
    got = dv.fhir_datetime("2024-03-15", t, timedelta(hours=9), "Europe/Berlin")
    assert got == "2024-03-15T10:15:00+09:00"


def test_fhir_datetime_zone_is_dst_correct() -> None:
    t = dv.parse_tm("101500")
    assert dv.fhir_datetime("2024-03-15", t, None, "Europe/Berlin") == "2024-03-15T10:15:00+01:00"
    assert dv.fhir_datetime("2024-07-15", t, None, "Europe/Berlin") == "2024-07-15T10:15:00+02:00"
    assert dv.fhir_datetime("2024-07-15", t, None, "UTC") == "2024-07-15T10:15:00+00:00"


def test_fhir_datetime_without_zone_is_date_only() -> None:
    t = dv.parse_tm("101500")
    assert dv.fhir_datetime("2024-03-15", t, None, None) == "2024-03-15"


def test_fhir_datetime_partial_date_drops_time() -> None:
    t = dv.parse_tm("101500")
    assert dv.fhir_datetime("2024-03", t, timedelta(0), None) == "2024-03"
    assert dv.fhir_datetime(None, t, timedelta(0), None) is None


def test_bad_zone_is_config_error() -> None:
    with pytest.raises(ConfigError, match="dicom_timezone"):
        dv.zone("Mars/Base")


def test_parse_dt() -> None:
    got = dv.parse_dt("20240315101500.5+0100")
    assert got is not None
    assert got.date == "2024-03-15"
    assert got.time is not None and got.time.iso() == "10:15:00.5"
    assert got.offset == timedelta(hours=1)
    partial = dv.parse_dt("2024")
    assert partial is not None and partial.date == "2024" and partial.time is None
    assert dv.parse_dt("20241350") is None
    assert dv.parse_dt("20240315+2500") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("12", 12),
        (" -3 ", -3),
        (7, 7),
        (7.0, 7),
        ("1.5", None),
        ("1e3", None),
        ("abc", None),
        (True, None),
        ("70kg", None),
        ("12 mm", None),
        ("2147483647", 2**31 - 1),
        ("-2147483647", -(2**31) + 1),
        ("2147483648", None),  # IS range: +-(2^31-1), PS3.5 Table 6.2-1
        ("99999999999", None),
        (2**31, None),
        (10**400, None),
        (1e300, None),
    ],
)
def test_parse_is(raw: object, expected: int | None) -> None:
    assert dv.parse_is(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1.75", 1.75),
        (" 80 ", 80.0),
        (80, 80.0),
        ("1e2", 100.0),
        ("1,75", None),
        ("NaN", None),
        ("inf", None),
        ("", None),
        (None, None),
        (False, None),
        ("70kg", None),
        ("1e999", None),  # overflows to inf
        (10**400, None),  # too large for a float
        (float("nan"), None),
        ("1e300", None),  # huge: beyond 2^53
        (1e16, None),
        (-(2.0**53), None),
        ("9007199254740991", 2.0**53 - 1),
        (1e-300, 1e-300),
    ],
)
def test_parse_ds(raw: object, expected: float | None) -> None:
    assert dv.parse_ds(raw) == expected


def test_pn_components_pads_to_five() -> None:
    assert dv.pn_components("Doe^John") == ["Doe", "John", "", "", ""]
    assert dv.pn_components("Doe^John^A^Dr.^MD^extra") == ["Doe", "John", "A", "Dr.", "MD"]


def test_fhir_datetime_dst_edges_are_resolved_with_fold_0() -> None:
    t = dv.parse_tm("023000")
    # fall back (02:00-03:00 happens twice): the first occurrence, summer time
    assert dv.fhir_datetime("2024-10-27", t, None, "Europe/Berlin") == "2024-10-27T02:30:00+02:00"
    # spring forward (02:00-03:00 does not exist): the offset before the change
    assert dv.fhir_datetime("2024-03-31", t, None, "Europe/Berlin") == "2024-03-31T02:30:00+01:00"


def test_fhir_datetime_empty_zone_name_means_no_zone() -> None:
    assert dv.fhir_datetime("2024-03-15", dv.parse_tm("1015"), None, "") == "2024-03-15"
