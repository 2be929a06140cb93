"""One error tree; the class says what the app does: dead-letter, retry, or exit."""

from __future__ import annotations

from typing import ClassVar, Literal

Action = Literal["dead-letter", "retry", "exit"]


class StreamerError(Exception):
    """Base of all streamer errors."""

    action: ClassVar[Action] = "exit"


class ConfigError(StreamerError):
    """A setting or the library config is wrong; raised at startup, names the setting."""

    action = "exit"


class InvalidMessageError(StreamerError):
    """An input message cannot be used (not JSON, not an object, no StudyInstanceUID, ...)."""

    action = "dead-letter"


class InvalidInstanceError(InvalidMessageError):
    """A DICOM JSON instance lacks what every instance needs (its UIDs) or has malformed structure."""


class LateInstanceError(InvalidMessageError):
    """An instance arrived for a study closed longer ago than the reopen window."""


class MappingError(StreamerError):
    """A whole study could not become a valid Bundle (should be rare: odd values are dropped, not fatal)."""

    action = "dead-letter"


class TransientError(StreamerError):
    """A broker or I/O hiccup worth retrying."""

    action = "retry"
