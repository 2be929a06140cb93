"""Jars of the Java helpers, fetched once from Maven Central into the user cache (dev tooling only).

The dev broker (Apache Kafka), the dev FHIR server (HAPI JPA) and the tests' HL7 validator each
describe what they need as a small POM; Maven's dependency plugin copies those jars with all their
runtime dependencies into ``<cache>/<name>/libs``, so no download or unpacking step of our own
runs. A marker written last lists the jars of a complete fetch, so a half-done one is never
reused; a lock file serialises concurrent fetches (parallel test sessions); a changed POM fetches
again. ``javac`` compiles a helper's Java source against them once per source hash.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
_MARKER = ".complete"  # lists the jars of a complete fetch; written last
_POM_COPY = "pom.xml"  # the POM the jars were fetched for


def cache_root() -> Path:
    """``$STREAMER_CACHE_DIR``, or ``~/.cache/streamer``."""
    env = os.environ.get("STREAMER_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "streamer"


def jars_complete(libs: Path, pom: str | None = None) -> bool:
    """Whether ``libs`` holds a finished fetch (of this very POM, when one is given)."""
    marker = libs / _MARKER
    if not marker.is_file():
        return False
    if pom is not None:
        fetched = libs / _POM_COPY
        if not fetched.is_file() or fetched.read_text() != pom:
            return False
    names = [n for n in marker.read_text().splitlines() if n]
    return bool(names) and all((libs / n).is_file() for n in names)


def ensure_jars(
    home: Path,
    pom: str,
    wanted: Iterable[str],
    *,
    what: str,
    error: type[Exception] = RuntimeError,
    timeout: float = 1800,
) -> Path:
    """``home/libs`` with the POM's jars; Maven runs only on a cold (or outdated) cache.

    ``wanted`` are jar file names a good fetch must contain; ``what`` names the fetch in errors,
    which are raised as ``error``.
    """
    libs = home / "libs"
    if jars_complete(libs, pom):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise error(f"mvn not on PATH: needed once to fetch {what} into {libs}")
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if jars_complete(libs, pom):  # another process finished while we waited
            return libs
        with tempfile.TemporaryDirectory(prefix="fetch-", dir=home) as tmp:
            work = Path(tmp)
            (work / "pom.xml").write_text(pom)
            out = work / "libs"
            cmd = [
                mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(work / "pom.xml"),
                f"{_DEPENDENCY_PLUGIN}:copy-dependencies",
                f"-DoutputDirectory={out}", "-DincludeScope=runtime",
            ]  # fmt: skip
            res = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
            )
            jars = sorted(p.name for p in out.glob("*.jar")) if out.is_dir() else []
            missing = sorted(set(wanted) - set(jars))
            if res.returncode != 0 or missing:
                tail = "\n".join((res.stdout + res.stderr).splitlines()[-30:])
                raise error(
                    f"fetching {what} with Maven failed (exit {res.returncode}, "
                    f"missing {missing}):\n{tail}"
                )
            shutil.rmtree(libs, ignore_errors=True)
            out.rename(libs)
        (libs / _POM_COPY).write_text(pom)
        (libs / _MARKER).write_text("\n".join(jars) + "\n")  # last: the fetch is complete
    return libs


def classpath(libs: Path) -> str:
    """The fetched jars, as a class path (only those of the complete fetch)."""
    names = [n for n in (libs / _MARKER).read_text().splitlines() if n]
    return os.pathsep.join(str(libs / n) for n in names)


def compile_java(
    source: Path,
    main_class: str,
    classes_root: Path,
    libs: Path,
    *,
    salt: str,
    error: type[Exception] = RuntimeError,
) -> str:
    """Compile ``source`` against ``libs`` into ``classes_root/<hash>`` (once per source and salt);
    returns the class path that runs ``main_class``."""
    java_classpath = classpath(libs)
    digest = hashlib.sha256(source.read_bytes() + salt.encode()).hexdigest()[:16]
    classes = classes_root / digest
    if not (classes / f"{main_class}.class").is_file():
        javac = shutil.which("javac")
        if javac is None:
            raise error(f"javac (JDK 17+) must be on PATH to compile {source.name}")
        classes_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="javac-", dir=classes_root) as tmp:
            cmd = [javac, "-nowarn", "-encoding", "UTF-8", "-d", tmp, "-cp", java_classpath]
            res = subprocess.run(
                [*cmd, str(source)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if res.returncode != 0:
                raise error(f"javac {source.name} failed:\n{res.stdout}{res.stderr}")
            try:
                Path(tmp).rename(classes)
            except OSError:  # another process compiled the same source meanwhile
                if not (classes / f"{main_class}.class").is_file():
                    raise
    return os.pathsep.join([str(classes), java_classpath])
