"""What a changelog record carries besides its key and value."""

from __future__ import annotations

from collections.abc import Iterable

SOURCE_OFFSET_HEADER = "streamer.src"


def source_offset_header(last_processed: int) -> tuple[str, bytes]:
    """The input offset a checkpoint's changelog records reflect (the last one processed).

    On restore, a record whose source offset is not below the committed input offset comes from a
    checkpoint whose commit never happened: its input is read again, so the record is skipped.
    """
    return (SOURCE_OFFSET_HEADER, str(last_processed).encode())


def read_source_offset(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    for name, value in headers or ():
        if name == SOURCE_OFFSET_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None
