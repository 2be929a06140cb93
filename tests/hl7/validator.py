"""The HL7 FHIR R4B instance validator (HAPI FHIR 8.8.1), built from Maven Central, offline, in one JVM.

Test tooling only (``streamer/`` never imports it). ``ensure_validator()`` fetches the HAPI jars once into
``~/.cache/streamer/hl7-validator-8.8.1/libs`` (``$STREAMER_CACHE_DIR`` overrides the root) with a generated POM
and ``mvn dependency:copy-dependencies``, like the Kafka jars (``streamer/devbroker/kafka_jars.py``), and compiles
``Validate.java`` with ``javac`` into ``classes/<hash of the source>``. ``Validator.start()`` runs it: one JVM
validates every file whose path it is sent (≈ 5 s to start and warm up, then tens of milliseconds per Bundle).

    python -m tests.hl7.validator fetch             # fetch + compile (make test does this first)
    python -m tests.hl7.validator check FILE...     # validate Bundle files, print the issues

For other tests: ``validate_all(bundles)`` raises AssertionError naming every error the validator finds (and
every Bundle-consistency problem and new kind of warning); ``shared_validator()`` is the one JVM of the session.

Why 8.8.1: the newest release whose R4B artifacts (``hapi-fhir-structures-r4b``,
``hapi-fhir-validation-resources-r4b``) are on Maven Central; 8.10.x and 8.12.x lack them. R4B takes its v2/v3
code systems from ``hapi-fhir-validation-resources-r4``, so that is fetched too.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from streamer import maven

HAPI_VERSION = "8.8.1"
HAPI_ARTIFACTS = (
    "hapi-fhir-base",
    "hapi-fhir-structures-r4b",
    "hapi-fhir-validation",
    "hapi-fhir-validation-resources-r4b",
    # R4B's v2/v3 code systems (v2-0203, ...) are only in the R4 resources.
    "hapi-fhir-validation-resources-r4",
    "hapi-fhir-caching-caffeine",
)
# HAPI logs through slf4j 2.0.16; without a provider slf4j prints a warning and drops everything.
_SLF4J_VERSION = "2.0.16"
SOURCE = Path(__file__).with_name("Validate.java")
KNOWN_WARNINGS = Path(__file__).with_name("known_warnings.txt")
ERROR_SEVERITIES = frozenset({"error", "fatal"})
# JVM start + loading the R4B definitions + one warm-up validation: ≈ 5 s here; generous for slow CI.
_STARTUP_TIMEOUT = 180.0
# 1 GB is plenty (the R4B definitions take a few hundred MB) and keeps the JVM's footprint below ≈ 1 GB
# instead of growing towards a quarter of the machine's memory; $STREAMER_HL7_JVM_OPTS replaces it.
_JVM_OPTS = "-Xmx1g"
_ANSWER_TIMEOUT = 120.0  # one Bundle (the largest here take well under a second)

_DEPENDENCY = """\
    <dependency>
      <groupId>{group}</groupId><artifactId>{artifact}</artifactId><version>{version}</version>
    </dependency>
"""
_POM = """\
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamer</groupId>
  <artifactId>hl7-validator-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}  </dependencies>
</project>
"""


class ValidatorUnavailable(RuntimeError):
    """java, javac or (on a cold cache) mvn is missing, or fetching/compiling failed."""


class ValidatorCrashed(RuntimeError):
    """The validator JVM died or did not answer in time."""


# --- fetch and compile -----------------------------------------------------------------------


def cache_dir(version: str = HAPI_VERSION) -> Path:
    """``$STREAMER_CACHE_DIR/hl7-validator-<version>`` (default root ``~/.cache/streamer``)."""
    return maven.cache_root() / f"hl7-validator-{version}"


def _pom(version: str) -> str:
    deps = [("ca.uhn.hapi.fhir", a, version) for a in HAPI_ARTIFACTS]
    deps.append(("org.slf4j", "slf4j-simple", _SLF4J_VERSION))
    return _POM.format(
        dependencies="".join(_DEPENDENCY.format(group=g, artifact=a, version=v) for g, a, v in deps)
    )


def ensure_jars(version: str = HAPI_VERSION) -> Path:
    """The ``libs`` dir with HAPI ``version`` and all its runtime jars, fetched by Maven on a cold cache."""
    return maven.ensure_jars(
        cache_dir(version),
        _pom(version),
        [f"{a}-{version}.jar" for a in HAPI_ARTIFACTS],
        what=f"HAPI FHIR {version}",
        error=ValidatorUnavailable,
    )


def ensure_validator(version: str = HAPI_VERSION) -> tuple[str, str]:
    """Fetch the jars and compile ``Validate.java`` (once per source hash); returns (java, classpath)."""
    java, javac = shutil.which("java"), shutil.which("javac")
    if java is None or javac is None:
        raise ValidatorUnavailable("java and javac (JDK 17+) must be on PATH for the HL7 validator")
    libs = ensure_jars(version)
    classpath = maven.compile_java(
        SOURCE,
        "Validate",
        cache_dir(version) / "classes",
        libs,
        salt=version,
        error=ValidatorUnavailable,
    )
    return java, classpath


# --- issues ------------------------------------------------------------------------------------


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_OID = re.compile(r"\b[0-9]+(?:\.[0-9]+){3,}\b")  # DICOM UIDs and other OIDs (4+ components)
_ENTRY = re.compile(r"^Bundle\.entry\[\d+\]\.resource(?:/\*(\w+)/[^*]*\*/)?")
_INDEX = re.compile(r"\[\d+\]")
# the code of a coding: "for 'system#code'", "codes = system#code, system#code"
# our derived system for a coding scheme without a known URI: one kind whatever the designator
_DERIVED_SCHEME = re.compile(r"urn:dicom:coding-scheme:[^\s#'|,()]+")
_CODE = re.compile(r"((?:for '|codes = |, )[^'\s#,()]+#)[^'\s,()]+")
_QUOTED_VALUE = re.compile(r"(?<=[Vv]alue ')[^']*(?=')")
# a number standing alone (not part of a name like dom-6, a version like |4.3.0 or a URL)
_NUMBER = re.compile(r"(?<![\w.:/#|<-])\d+(?:\.\d+)*(?![\w:/-]|\.\w)")


def normalise_location(location: str) -> str:
    """``Bundle.entry[3].resource/*Patient/<id>*/.identifier[1].type`` -> ``Patient.identifier.type``."""
    m = _ENTRY.match(location)
    if m is not None:
        location = (m.group(1) or "Resource") + location[m.end() :]
    location = _INDEX.sub("", location).replace("/", "")
    return location.replace("..", ".")


def normalise_message(message: str) -> str:
    """The message with ids, UIDs, codes and numbers replaced, so one kind of finding gives one text."""
    message = _UUID.sub("<uuid>", message)
    message = _OID.sub("<uid>", message)
    message = _DERIVED_SCHEME.sub("urn:dicom:coding-scheme:<designator>", message)
    message = _CODE.sub(r"\1<code>", message)
    message = _QUOTED_VALUE.sub("<value>", message)
    return _NUMBER.sub("<n>", message)


@dataclass(frozen=True, slots=True)
class Issue:
    """One finding of the validator for one file."""

    severity: str  # fatal, error, warning, information
    location: str
    message: str
    message_id: str | None = None
    line: int | None = None
    col: int | None = None

    @property
    def is_error(self) -> bool:
        return self.severity in ERROR_SEVERITIES

    @property
    def kind(self) -> str:
        """``severity | resource path | message id | message`` with ids/UIDs/codes/numbers normalised."""
        return " | ".join(
            (
                self.severity,
                normalise_location(self.location),
                self.message_id or "-",
                normalise_message(self.message),
            )
        )

    def __str__(self) -> str:
        return f"{self.severity} at {self.location}: {self.message}"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Issue:
        return cls(
            severity=str(d.get("severity") or "fatal"),
            location=str(d.get("location") or ""),
            message=str(d.get("message") or ""),
            message_id=d.get("messageId"),
            line=d.get("line"),
            col=d.get("col"),
        )


def known_kinds(path: Path = KNOWN_WARNINGS) -> set[str]:
    """The checked-in kinds of non-error findings (one a line; ``#`` comments)."""
    if not path.is_file():
        return set()
    lines = (ln.strip() for ln in path.read_text(encoding="utf-8").splitlines())
    return {ln for ln in lines if ln and not ln.startswith("#")}


_KNOWN_HEADER = f"""\
# Kinds of warnings/information the HL7 validator (HAPI FHIR {HAPI_VERSION}, R4B, offline) reports on our Bundles.
# One a line: severity | resource path | message id | message (ids, UIDs, codes, numbers normalised).
# A kind not listed fails tests/hl7 (and validate_all): look at it, then add it here
# (STREAMER_HL7_UPDATE_KNOWN=1 pytest -m hl7 adds every kind seen to this list).
#
# Looked at (by message id):
# - dom-6: no narrative (Resource.text); our Bundles carry none by design (best practice only).
# - Validation_VAL_Profile_Unknown, Extension_EXT_Unknown: the MII Bildgebung profiles/extensions and the
#   German base profiles (fhir.de) are not in the jars; offline they cannot be checked.
# - Terminology_TX_ValueSet_NotFound: the R4B bindings of modality (DICOM CID 29), sopClass (PS3.4 B.5) and
#   procedureCode (RadLex playbook) name web pages, not ValueSets (extensible/preferred bindings).
# - Terminology_PassThrough_TX_Message, TERMINOLOGY_TX_SYSTEM_UNSUPPORTED: code systems unknown without a
#   terminology server (LOINC, SNOMED CT, RadLex, MII code systems).
# - Terminology_TX_NoValid_2_CC at ImagingStudy.series.performer.function: the Device performer is coded
#   v3-ParticipationType#DEV, which the extensible ValueSet series-performer-function (CON, VRF, PRF, SPRF,
#   REF) does not contain; it has no code for a device, so the extensible binding allows DEV.
# - All_observations_should_have_a_performer: best practice; DICOM names no performer for weight/height.
# - Terminology_TX_Code_ValueSet_Ext at Patient.identifier.type: OtherPatientIDs carry TypeOfPatientID as
#   text only (no code from the extensible IdentifierType ValueSet fits).
# - Type_Specific_Checks_DT_DateTime_Reasonable at Patient.birthDate: a pydicom test file's PatientBirthDate
#   is 1111-11-11 (kept as given).
"""


def write_known_kinds(kinds: Iterable[str], path: Path = KNOWN_WARNINGS) -> None:
    """Write the sorted unique ``kinds`` under the header (which records why each was accepted)."""
    body = "".join(f"{k}\n" for k in sorted(set(kinds)))
    path.write_text(_KNOWN_HEADER + body, encoding="utf-8")


# --- the JVM -------------------------------------------------------------------------------------


class Validator:
    """One running validator JVM. ``validate`` is thread-safe; ``validate_many`` pipelines requests."""

    def __init__(self, proc: subprocess.Popen[str], workdir: Path, log: IO[str]) -> None:
        self._proc = proc
        self._workdir = workdir
        self._log = log
        self._lock = threading.Lock()  # serialises writes to stdin and the file counter
        self._cond = threading.Condition()
        self._answers: dict[str, list[Issue]] = {}
        self._counter = 0
        self._eof = False
        self.info: dict[str, Any] = {}
        self.validated = 0
        ready = threading.Event()
        self._reader = threading.Thread(
            target=self._read, args=(ready,), name="hl7-validator-reader", daemon=True
        )
        self._reader.start()
        if not ready.wait(_STARTUP_TIMEOUT) or not self.info:
            self.close()
            raise ValidatorCrashed(f"the validator did not start:\n{self.log_tail()}")

    @classmethod
    def start(cls, threads: int = 1, version: str = HAPI_VERSION) -> Validator:
        """Fetch/compile if needed, start the JVM and wait until it is warm.

        ``threads`` > 1 validates that many files at a time in the JVM (answers matched by file).
        """
        java, classpath = ensure_validator(version)
        workdir = Path(tempfile.mkdtemp(prefix="hl7-validator-"))
        log = (workdir / "validator.log").open("w+", encoding="utf-8")
        jvm_opts = os.environ.get("STREAMER_HL7_JVM_OPTS", _JVM_OPTS).split()
        cmd = [
            java, *jvm_opts,
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
            "-Dorg.slf4j.simpleLogger.logFile=System.err",
            "-cp", classpath, "Validate", "--threads", str(threads),
        ]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            encoding="utf-8",
            bufsize=1,
            cwd=workdir,
        )
        return cls(proc, workdir, log)

    def _read(self, ready: threading.Event) -> None:
        assert self._proc.stdout is not None
        try:
            for line in self._proc.stdout:
                if not line.strip():
                    continue
                try:
                    d = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # not ours (nothing else writes to stdout, but never die on it)
                if d.get("ready"):
                    self.info = d
                    ready.set()
                    continue
                issues = [Issue.from_json(i) for i in d.get("issues") or ()]
                with self._cond:
                    self._answers[str(d["file"])] = issues
                    self._cond.notify_all()
        finally:
            with self._cond:
                self._eof = True
                self._cond.notify_all()
            ready.set()

    def log_tail(self, lines: int = 40) -> str:
        try:
            self._log.flush()
            text = (self._workdir / "validator.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _submit(self, bundle: Mapping[str, Any] | bytes) -> str:
        with self._lock:
            self._counter += 1
            path = self._workdir / f"b{self._counter}.json"
            path.write_bytes(bundle if isinstance(bundle, bytes) else orjson.dumps(bundle))
            self._send(str(path))
        return str(path)

    def _send(self, path: str) -> None:
        if "\n" in path or "\r" in path:
            raise ValueError(f"a path with a line break cannot be sent: {path!r}")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(path + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError) as e:
            raise ValidatorCrashed(f"the validator JVM is gone:\n{self.log_tail()}") from e

    def _wait(self, path: str, timeout: float = _ANSWER_TIMEOUT) -> list[Issue]:
        with self._cond:
            if not self._cond.wait_for(lambda: path in self._answers or self._eof, timeout):
                raise ValidatorCrashed(f"no answer for {path} in {timeout:.0f} s")
            if path not in self._answers:
                raise ValidatorCrashed(
                    f"the validator JVM exited ({self._proc.poll()}):\n{self.log_tail()}"
                )
            self.validated += 1
            return self._answers.pop(path)

    def validate(self, bundle: Mapping[str, Any] | bytes) -> list[Issue]:
        """Every issue the validator reports for ``bundle`` (a resource dict or its JSON bytes)."""
        path = self._submit(bundle)
        try:
            return self._wait(path)
        finally:
            Path(path).unlink(missing_ok=True)

    def validate_many(self, bundles: Iterable[Mapping[str, Any] | bytes]) -> list[list[Issue]]:
        """``validate`` for each, all sent at once (the JVM works while Python writes the next)."""
        paths = [self._submit(b) for b in bundles]
        try:
            return [self._wait(p) for p in paths]
        finally:
            for p in paths:
                Path(p).unlink(missing_ok=True)

    def validate_file(self, path: str | os.PathLike[str]) -> list[Issue]:
        """The issues of a file as it is (a FHIR resource in JSON)."""
        p = str(Path(path).resolve())
        with self._lock:
            self._send(p)
        return self._wait(p)

    def close(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # EOF: the JVM finishes and exits
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self._log.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Validator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: Validator | None = None
_shared_error: ValidatorUnavailable | ValidatorCrashed | None = None
_shared_lock = threading.Lock()


def shared_validator() -> Validator:
    """The validator of this process, started on first use and stopped at exit.

    Raises ValidatorUnavailable/ValidatorCrashed (the same error again on later calls) when it cannot start.
    """
    global _shared, _shared_error
    with _shared_lock:
        if _shared is not None:
            return _shared
        if _shared_error is not None:
            raise _shared_error
        try:
            threads = int(os.environ.get("STREAMER_HL7_THREADS", "0")) or min(
                2, os.cpu_count() or 1
            )
            _shared = Validator.start(threads=threads)
        except (ValidatorUnavailable, ValidatorCrashed) as e:
            _shared_error = e
            raise
        atexit.register(_shared.close)
        return _shared


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


# --- the hook for other tests --------------------------------------------------------------------


def describe(bundle: Mapping[str, Any], issues: Sequence[Issue], label: str = "") -> str:
    """``Bundle <label or id>:`` and one line per issue (the location names the resource type and id)."""
    lines = [f"Bundle {label or bundle.get('id', '?')}:"]
    lines += [f"  {i}" for i in issues]
    return "\n".join(lines)


def validate_all(
    bundles: Iterable[Mapping[str, Any]],
    *,
    validator: Validator | None = None,
    check_warnings: bool = True,
) -> None:
    """Assert that every Bundle passes the HL7 validator with 0 errors and our Bundle-consistency check,
    and (``check_warnings``) that every warning/information kind is in ``known_warnings.txt``.

    Raises AssertionError naming each Bundle, resource location and message. When the validator cannot run
    (no java/mvn), this warns and checks consistency only, except under ``CI`` where it raises.
    """
    from tests.hl7.consistency import consistency_problems

    bundles = list(bundles)
    labels = [f"#{n} (id {b.get('id', '?')})" for n, b in enumerate(bundles)]
    problems: list[str] = []
    for label, b in zip(labels, bundles, strict=True):
        found = consistency_problems(b)
        if found:
            problems.append(f"Bundle {label}: inconsistent:\n" + "\n".join(f"  {p}" for p in found))
    if validator is None:
        try:
            validator = shared_validator()
        except (ValidatorUnavailable, ValidatorCrashed) as e:
            if in_ci():
                raise
            warnings.warn(f"HL7 validator not run: {e}", stacklevel=2)
    if validator is not None:
        known = known_kinds()
        for label, b, issues in zip(labels, bundles, validator.validate_many(bundles), strict=True):
            errors = [i for i in issues if i.is_error]
            if errors:
                problems.append(describe(b, errors, label))
            new = sorted({i.kind for i in issues if not i.is_error} - known)
            if check_warnings and new:
                problems.append(
                    f"Bundle {label}: new kinds of warnings (look at them, then add them to "
                    f"{KNOWN_WARNINGS}):\n" + "\n".join(f"  {k}" for k in new)
                )
    if problems:
        raise AssertionError(
            f"{len(problems)} problem(s) in {len(bundles)} Bundle(s):\n" + "\n".join(problems)
        )


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] not in ("fetch", "check"):
        print(__doc__)
        return 2
    try:
        if argv[0] == "fetch":
            ensure_validator()
            print(f"HL7 validator ready (HAPI FHIR {HAPI_VERSION}) in {cache_dir()}")
            return 0
        with Validator.start() as v:
            bad = 0
            for f in argv[1:]:
                issues = v.validate_file(f)
                bad += any(i.is_error for i in issues)
                print(f"{f}: {len(issues)} issue(s)")
                for i in issues:
                    print(f"  {i}")
            return 1 if bad else 0
    except (ValidatorUnavailable, ValidatorCrashed) as e:
        print(e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
