"""Write a benchmark's result table into README.md, between its markers, so nobody types figures.

A block is ``<!-- bench:NAME:start -->`` ... ``<!-- bench:NAME:end -->``; the text between the
markers is replaced whole. A README without the markers is left alone (the bench says so).
"""

from __future__ import annotations

import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def write_block(name: str, markdown: str, readme: Path = README) -> bool:
    """Replace block ``name`` of the README with ``markdown``; False when the markers are missing."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = readme.read_text()
    if start not in text or end not in text:
        print(f"README has no {start} block; not updated", file=sys.stderr)
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n{markdown.strip()}\n{end}{tail}")
    return True
