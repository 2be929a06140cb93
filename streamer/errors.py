"""One error tree. The branch an error sits on says what the processor does with it.

* ``ConfigError``: a setting, a topic or the library config is wrong; the start stops (exit 2).
* ``DeadLetterError``: one input record, or one study, can never be used as it is; it goes to the
  dead-letter topic with the reason and the stream goes on.
* ``OutputError``, ``StateError``: the broker does not take our output, or the study store cannot
  be restored; nothing is committed after it and the process exits non-zero, so the orchestrator
  restarts it and the uncommitted input is read again.
* ``RecordHandlingError``: handling one record raised something unforeseen (a bug, not bad input);
  the partial change cannot be trusted, so the process exits the same way, after noting the record.
  After ``STREAMER_MAX_RECORD_ATTEMPTS`` such starts the record is dead-lettered
  (``RecordFailedError``) instead of handled, so one record never stops the stream for good.

Third-party errors are wrapped once, where they enter (``kafka/`` for aiokafka), and the loop decides
by class, never by name.
"""

from __future__ import annotations


class StreamerError(Exception):
    """Base of all streamer errors."""


class ConfigError(StreamerError):
    """A setting or the library config is wrong; raised at startup, names the setting."""


class DeadLetterError(StreamerError):
    """Something that cannot be used as it is: dead-letter it, go on."""


class InvalidMessageError(DeadLetterError):
    """An input message cannot be used (not JSON, not an object, no StudyInstanceUID, ...)."""


class InvalidInstanceError(InvalidMessageError):
    """A DICOM JSON instance lacks what every instance needs (its UIDs) or has malformed structure."""


class InvalidMarkerError(InvalidMessageError):
    """An end-of-study marker that does not follow its schema."""


class MessageKeyError(InvalidMessageError):
    """The record key is missing, not UTF-8, or not the message's StudyInstanceUID."""


class OversizedRecordError(InvalidMessageError):
    """The record is larger than STREAMER_MAX_RECORD_BYTES."""


class LateInstanceError(InvalidMessageError):
    """An instance arrived for a study that was closed and is no longer kept."""


class PatientConflictError(InvalidMessageError):
    """An instance names another patient than the study's first instance did."""


class StudyTooLargeError(InvalidMessageError):
    """An instance beyond STREAMER_MAX_INSTANCES_PER_STUDY for its study."""


class EmptyStudyError(DeadLetterError):
    """An end-of-study marker whose study never got an instance before its timeout."""


class RecordFailedError(DeadLetterError):
    """Handling this record failed unexpectedly on STREAMER_MAX_RECORD_ATTEMPTS starts in a row."""


class MappingError(DeadLetterError):
    """A whole study could not become a valid Bundle (rare: odd values are dropped, not fatal)."""


class BundleBuildError(DeadLetterError):
    """Building a study's Bundle raised an unforeseen error (a bug, not the data): the study is
    dead-lettered; the log has the stack."""


class RecordTooLargeError(DeadLetterError):
    """The broker will never take this record (larger than the producer or topic allows)."""


class StateError(StreamerError):
    """The study store cannot be opened or restored: exit; the next start restores again."""


class OutputError(StreamerError):
    """The broker refused or lost an output record for another reason: stop without committing."""


class RecordHandlingError(StreamerError):
    """Handling one input record raised an unforeseen error: exit without committing (see above)."""
