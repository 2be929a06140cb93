"""Which modules run as compiled extensions (setup.py builds them with mypyc), and which are stale.

Python imports an extension module in preference to the .py beside it, so after an edit to a compiled
module the old extension keeps running until ``make compile``: the processor warns at start and the
tests refuse to run.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# Longest first, so "x.cpython-311-x86_64-linux-gnu.so" is not read as "x.cpython-311-...-gnu" + ".so".
_SUFFIXES = sorted(EXTENSION_SUFFIXES, key=len, reverse=True)


def extensions(package: Path = _PACKAGE) -> dict[Path, Path]:
    """Each extension module under ``package`` with the source it was built from."""
    found: dict[Path, Path] = {}
    for path in package.rglob("*"):
        suffix = next((s for s in _SUFFIXES if path.name.endswith(s)), None)
        if suffix is None:
            continue
        source = path.with_name(path.name[: -len(suffix)] + ".py")
        if source.is_file():  # the shared library (streamer__mypyc) is not in the package
            found[path] = source
    return found


def stale_sources(package: Path = _PACKAGE) -> list[str]:
    """Sources edited after their extension was built (their old compiled code is what runs)."""
    return sorted(
        str(source.relative_to(package.parent))
        for ext, source in extensions(package).items()
        if source.stat().st_mtime > ext.stat().st_mtime
    )
