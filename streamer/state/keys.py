"""The key layout of a partition store: UTF-8, `|`-separated.

    s|<study>            lifecycle record of a study           -> changelog
    i|<study>|<sop>      slim instance                         -> changelog
    c|<closed at>|<study> closed study, by close time (ms, 16 digits: key order is closing
                         order), for the retention sweep       -> changelog
    m|<name>             local metadata (offset, format, ...)  -> never leaves the store

UIDs are digits and dots, so `|` cannot occur in them; a UID that contains it anyway is refused,
because `i|1.2|3|...` would then fall inside the scan of study `1.2`.
"""

from __future__ import annotations

from streamer.state.errors import InvalidKeyError

SEP = b"|"
STUDY_PREFIX = b"s|"
INSTANCE_PREFIX = b"i|"
CLOSED_PREFIX = b"c|"
META_PREFIX = b"m|"

META_CHANGELOG_OFFSET = b"m|changelog_offset"
META_FORMAT = b"m|format"
META_IDENTITY = b"m|identity"
META_CHECKPOINT_MS = b"m|checkpoint_ms"
META_FAILED_RECORD = b"m|failed_record"  # the input record whose handling failed last


def _uid(uid: str, what: str) -> bytes:
    if not uid or "|" in uid:
        raise InvalidKeyError(f"{what} {uid!r} cannot be part of a state key (empty or has '|')")
    return uid.encode()


def study_key(study_uid: str) -> bytes:
    return STUDY_PREFIX + _uid(study_uid, "StudyInstanceUID")


def instance_prefix(study_uid: str) -> bytes:
    """The prefix of every instance key of one study (ends with the separator)."""
    return INSTANCE_PREFIX + _uid(study_uid, "StudyInstanceUID") + SEP


def instance_key(study_uid: str, sop_uid: str) -> bytes:
    return instance_prefix(study_uid) + _uid(sop_uid, "SOPInstanceUID")


def parse_study_key(key: bytes) -> str:
    if not key.startswith(STUDY_PREFIX):
        raise InvalidKeyError(f"not a study key: {key!r}")
    return key[len(STUDY_PREFIX) :].decode()


def parse_instance_key(key: bytes) -> tuple[str, str]:
    """(study UID, SOP instance UID) of an `i|` key."""
    if not key.startswith(INSTANCE_PREFIX):
        raise InvalidKeyError(f"not an instance key: {key!r}")
    study, sep, sop = key[len(INSTANCE_PREFIX) :].partition(SEP)
    if not sep:
        raise InvalidKeyError(f"not an instance key: {key!r}")
    return study.decode(), sop.decode()


def closed_key(closed_at_ms: int, study_uid: str) -> bytes:
    """The closing-order index entry of a closed study (times before 1970 sort as 0)."""
    return b"%s%016d|%s" % (
        CLOSED_PREFIX,
        max(0, closed_at_ms),
        _uid(study_uid, "StudyInstanceUID"),
    )


def parse_closed_key(key: bytes) -> tuple[int, str]:
    """(close time in ms, study UID) of a `c|` key."""
    if not key.startswith(CLOSED_PREFIX):
        raise InvalidKeyError(f"not a closed-study key: {key!r}")
    stamp, sep, study = key[len(CLOSED_PREFIX) :].partition(SEP)
    if not sep or not stamp.isdigit() or not study:
        raise InvalidKeyError(f"not a closed-study key: {key!r}")
    return int(stamp), study.decode()


def is_local_key(key: bytes) -> bool:
    """True for `m|` metadata, which is never staged for the changelog."""
    return key.startswith(META_PREFIX)
