"""Build hook: compiles the conversion core to C extensions with mypyc (part of mypy).

The modules every instance goes through on its way to a Bundle (decoding, slimming, the study state,
the mapping and its validation) are listed in pyproject.toml under ``[tool.streamer] compiled``. They
are plain typed Python, checked by mypy --strict; mypyc turns each into an extension module that
Python imports instead of the .py beside it. Measured (bench/README.md): the conversion itself takes
about 1.8x less CPU per instance; the stream processor as a whole about 10 % less.

The pure-Python sources stay complete and correct on their own: ``STREAMER_PURE_PYTHON=1`` (or no C
compiler) builds without extensions. ``make compile`` rebuilds the extensions in place after an edit
(tests refuse to run against extensions older than their sources).
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import sysconfig
import tomllib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def compiled_sources() -> list[str]:
    """The module paths to compile, from pyproject.toml (one list for setup.py, make and the tests)."""
    with (HERE / "pyproject.toml").open("rb") as f:
        sources: list[str] = tomllib.load(f)["tool"]["streamer"]["compiled"]
    return sources


def _have_c_compiler() -> bool:
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(cc)[0]) is not None


def ext_modules() -> list[Extension]:
    if os.environ.get("STREAMER_PURE_PYTHON") == "1":
        return []
    if not _have_c_compiler():
        sys.stderr.write("streamer: no C compiler found, building pure Python (slower)\n")
        return []
    from mypyc.build import mypycify

    # One shared library, the top-level module streamer__mypyc, holds the compiled code; each module
    # gets a small shim that loads it. (mypyc derives the modules' __file__ from the library's place,
    # so it must sit beside the package, not in it; `make setup` puts the checkout itself on the
    # venv's import path for it.)
    return mypycify(compiled_sources(), opt_level="3", group_name="streamer")


class BuildExt(build_ext):  # type: ignore[misc]  # setuptools has no type hints
    """build_ext that marks every extension it built as new, shims whose C code did not change too.

    Most of the compiled code lives in one shared library; a module's own extension is a shim that
    setuptools copies with its old time when unchanged. streamer.compiled tells stale builds by
    these times (a source newer than its extension), so after a build all must be newer.
    """

    def run(self) -> None:
        super().run()
        for ext in self.extensions:
            path = Path(self.get_ext_fullpath(ext.name))
            if path.exists():
                path.touch()


if __name__ == "__main__":
    os.chdir(HERE)  # mypyc writes its C sources under build/ relative to the working directory
    setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildExt})
