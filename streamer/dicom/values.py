"""DICOM value representations (PS3.5 6.2) parsed into FHIR primitives.

Every parser returns None for a value it cannot read; the caller drops the element and warns. Nothing raises.

- DA ``YYYYMMDD`` (PS3.5 6.2; ACR-NEMA ``YYYY.MM.DD`` and ``YYYY-MM-DD`` tolerated; partial ``YYYY``/``YYYYMM``
  as allowed in query keys and seen in practice) -> FHIR ``date`` (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``).
- TM ``HH[MM[SS[.F{1,6}]]]`` (PS3.5 6.2; ACR-NEMA ``HH:MM:SS`` tolerated). Missing minutes/seconds mean the value
  has only that precision; FHIR ``dateTime`` needs seconds, so they are filled with zeros. A leap second (60,
  allowed by PS3.5) is clamped to 59 because FHIR instants and Python datetimes cannot hold it.
- DT ``YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]`` (PS3.5 6.2).
- Timezone Offset From UTC (0008,0201) ``&ZZXX``, -12:00..+14:00 (PS3.3 C.12.1.1.8).
- IS: integer string, DS: decimal string (JSON numbers allowed, PS3.18 F.2.3.1).
- PN: five ``^``-separated components family, given, middle, prefix, suffix (PS3.5 6.2.1).
"""

from __future__ import annotations

import calendar
import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streamer.errors import ConfigError

_DA = re.compile(r"(\d{4})(?:[.\-]?(\d{2})(?:[.\-]?(\d{2}))?)?")
_TM = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6})\d*)?)?)?")
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6})\d*)?([+-]\d{4})?")
_TZ = re.compile(r"([+-])(\d{2}):?(\d{2})")
_IS = re.compile(r"[+-]?\d{1,12}")
_IS_MAX = 2**31 - 1
_DS_MAX = float(2**53)


def parse_da(value: str | None) -> str | None:
    """DA -> FHIR date at the precision given; None if not a real calendar date (or year 0)."""
    if not value:
        return None
    m = _DA.fullmatch(value.strip())
    if m is None:
        return None
    y, mo, d = m.group(1), m.group(2), m.group(3)
    year = int(y)
    if year < 1:
        return None
    if mo is None:
        return y
    month = int(mo)
    if not 1 <= month <= 12:
        return None
    if d is None:
        return f"{y}-{mo}"
    day = int(d)
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    return f"{y}-{mo}-{d}"


@dataclass(frozen=True, slots=True)
class Time:
    """A parsed TM; ``fraction`` is the digit string after the point (may be empty)."""

    hour: int
    minute: int
    second: int
    fraction: str = ""

    def iso(self) -> str:
        """``HH:MM:SS[.F]`` as FHIR time/dateTime wants it."""
        base = f"{self.hour:02d}:{self.minute:02d}:{self.second:02d}"
        return f"{base}.{self.fraction}" if self.fraction else base


def parse_tm(value: str | None) -> Time | None:
    """TM -> Time; None when the value is not a valid time of day."""
    if not value:
        return None
    m = _TM.fullmatch(value.strip())
    if m is None:
        return None
    hour = int(m.group(1))
    minute = int(m.group(2) or 0)
    second = int(m.group(3) or 0)
    if hour > 23 or minute > 59 or second > 60:
        return None
    if second == 60:
        second = 59
    return Time(hour, minute, second, m.group(4) or "")


def parse_tz_offset(value: str | None) -> timedelta | None:
    """Timezone Offset From UTC (0008,0201) ``+HHMM``/``-HHMM`` -> timedelta, None if invalid or out of range."""
    if not value:
        return None
    m = _TZ.fullmatch(value.strip())
    if m is None:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if minutes > 59:
        return None
    delta = timedelta(hours=hours, minutes=minutes)
    if m.group(1) == "-":
        delta = -delta
    if not timedelta(hours=-12) <= delta <= timedelta(hours=14):
        return None
    return delta


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """An IANA time zone by name, cached; a wrong name is a ConfigError naming ``dicom_timezone``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise ConfigError(f"dicom_timezone: unknown IANA time zone {name!r}") from exc


def format_offset(delta: timedelta) -> str:
    """timedelta -> ``+HH:MM`` (FHIR dateTime offset)."""
    total = int(delta.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{sign}{total // 60:02d}:{total % 60:02d}"


def fhir_datetime(
    date: str | None,
    time: Time | None,
    offset: timedelta | None,
    zone_name: str | None,
) -> str | None:
    """Combine a FHIR date, a Time and a time zone into a FHIR ``dateTime``.

    FHIR requires a time zone whenever a time is given (R4B datatypes: dateTime). So: a full date with a time and
    a known offset (explicit ``offset`` first, else ``zone_name`` resolved DST-correctly for that local time)
    gives ``YYYY-MM-DDThh:mm:ss[.f]+zz:zz``; otherwise only the date (at its own precision) is returned.
    """
    if date is None:
        return None
    if time is None or len(date) != 10:
        return date
    if offset is None and zone_name:
        y, mo, d = int(date[0:4]), int(date[5:7]), int(date[8:10])
        local = datetime(y, mo, d, time.hour, time.minute, time.second, tzinfo=zone(zone_name))
        offset = local.utcoffset()
    if offset is None:
        return date
    return f"{date}T{time.iso()}{format_offset(offset)}"


@dataclass(frozen=True, slots=True)
class DateTimeParts:
    """A parsed DT: FHIR date, optional time, optional explicit offset."""

    date: str
    time: Time | None
    offset: timedelta | None


def parse_dt(value: str | None) -> DateTimeParts | None:
    """DT -> parts; None when invalid."""
    if not value:
        return None
    m = _DT.fullmatch(value.strip())
    if m is None:
        return None
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    da = parse_da(y + (mo or "") + (d or ""))
    if da is None:
        return None
    time: Time | None = None
    if hh is not None:
        time = parse_tm(hh + (mi or "") + (ss or "") + (f".{frac}" if frac and ss else ""))
        if time is None:
            return None
    offset = parse_tz_offset(tz) if tz else None
    if tz and offset is None:
        return None
    return DateTimeParts(da, time, offset)


def parse_is(value: object) -> int | None:
    """IS (or a JSON integer) -> int; None for anything else (``1.5``, ``abc``, ``12 mm``, booleans) and for
    values outside the IS range +-(2^31-1) (PS3.5 Table 6.2-1)."""
    if isinstance(value, bool):
        return None
    n: int | None = None
    if isinstance(value, int):
        n = value
    elif isinstance(value, float):
        n = int(value) if math.isfinite(value) and value.is_integer() else None
    elif isinstance(value, str):
        s = value.strip()
        if _IS.fullmatch(s):
            n = int(s)
    return n if n is not None and -_IS_MAX <= n <= _IS_MAX else None


def parse_ds(value: object) -> float | None:
    """DS (or a JSON number) -> float; None for anything else (``1,75``, ``70kg``, ``NaN``, ``inf``) and for
    huge values: a magnitude of 2^53 or more (``1e999``, ``1e300``), beyond which a double no longer holds
    every integer, so the number written would not be the number given; no mapped quantity comes near it."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            f = float(value)
        except OverflowError:
            return None
        return f if -_DS_MAX < f < _DS_MAX else None
    if isinstance(value, str):
        s = value.strip()
        if not s or len(s) > 32:
            return None
        try:
            f = float(s)
        except ValueError:
            return None
        if not -_DS_MAX < f < _DS_MAX or "_" in s or s.lower().startswith(("n", "i", "+i", "-i")):
            return None
        return f
    return None


def pn_components(group: str) -> list[str]:
    """A PN component group -> exactly five stripped components (family, given, middle, prefix, suffix)."""
    parts = [p.strip() for p in group.split("^")[:5]]
    return parts + [""] * (5 - len(parts))
