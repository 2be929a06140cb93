"""``python -m streamer convert PATH [PATH ...] [-o OUTDIR] ...``: DICOM files -> one FHIR Bundle file per study.

Every PATH is a DICOM file or a directory (searched recursively). Non-DICOM files, DICOMDIR files and files
without a usable instance are skipped and counted. For every study one R4B transaction Bundle (validated) is
written to ``OUTDIR/<StudyInstanceUID>.json`` (UIDs are digits and dots, and not patient data; a UID that is not
a valid UID gives ``study-<sha256 prefix>.json`` instead). An existing file of that name is replaced.

The last line on stdout is a summary, e.g.
``studies=3 instances=17 skipped_files=2 warnings=0 failed_studies=0``; ``-v`` adds the skip reasons on stderr.

Exit status: 0 when at least one study was written and none failed; 1 when nothing could be converted or a study
could not be mapped (the others are still written); 2 for a usage error (bad option or config value, missing
PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from streamer.errors import ConfigError, InvalidMessageError
from streamer.fhir import BundleResult
from streamer.library import ConversionReport, iter_results_from_directory, parse_config

_UID_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamer convert",
        description="Convert DICOM files to FHIR R4B transaction Bundles, one JSON file per study.",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM file or directory (recursive)")
    p.add_argument(
        "-o",
        "--outdir",
        default=".",
        help="directory for the Bundle files (default: current directory)",
    )
    p.add_argument(
        "--timezone",
        metavar="ZONE",
        help="IANA zone for DICOM dates/times without TimezoneOffsetFromUTC, e.g. Europe/Berlin",
    )
    p.add_argument(
        "--add-instances", action="store_true", help="list every instance in ImagingStudy.series"
    )
    p.add_argument(
        "--no-vital-signs",
        action="store_true",
        help="do not emit body weight / height Observations",
    )
    p.add_argument("--profile", choices=("core", "mii"), default="core", help="FHIR profile set")
    p.add_argument(
        "--wado-base-url", metavar="URL", help="DICOMweb WADO-RS base URL (adds an Endpoint)"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on the first unusable file instead of skipping it",
    )
    p.add_argument("--compact", action="store_true", help="write compact JSON (default: indented)")
    p.add_argument("-v", "--verbose", action="store_true", help="print skip reasons and warnings")
    return p


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "dicom_timezone": args.timezone,
        "generator": {
            "imaging_study": {"add_instances": bool(args.add_instances)},
            "observation": {"add_vital_signs": not args.no_vital_signs},
        },
        "profile": args.profile,
        "wado_base_url": args.wado_base_url,
        "directory_parser": {"skip_invalid_files": not args.strict},
    }


def bundle_file_name(study_uid: str) -> str:
    """``<uid>.json`` for a well-formed UID, else ``study-<16 hex of sha256(uid)>.json`` (safe as a name)."""
    if 0 < len(study_uid) <= 64 and _UID_RE.match(study_uid):
        return f"{study_uid}.json"
    return f"study-{hashlib.sha256(study_uid.encode()).hexdigest()[:16]}.json"


def _write_bundle(outdir: Path, result: BundleResult, option: int) -> None:
    target = outdir / bundle_file_name(result.study_uid)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(orjson.dumps(result.bundle, option=option) + b"\n")
    tmp.replace(target)  # a reader never sees a half-written file


async def _convert(
    paths: Sequence[str],
    config: dict[str, Any],
    outdir: Path,
    compact: bool,
    report: ConversionReport,
) -> None:
    """Map study by study and write each Bundle as soon as it is ready (nothing is held afterwards)."""
    option = 0 if compact else orjson.OPT_INDENT_2
    async for result in iter_results_from_directory(paths, config, report=report):
        await asyncio.to_thread(_write_bundle, outdir, result, option)


def main(argv: Sequence[str]) -> int:
    """Run ``streamer convert`` with ``argv`` (the arguments after ``convert``); returns the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        _err(f"streamer convert: no such file or directory: {', '.join(missing)}")
        return 2
    config = _config(args)
    try:
        parse_config(config)  # a bad value is a usage error, before anything is read or written
    except ConfigError as exc:
        _err(f"streamer convert: {exc}")
        return 2
    outdir = Path(args.outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _err(f"streamer convert: cannot create the output directory: {exc}")
        return 2
    report = ConversionReport()
    try:
        asyncio.run(_convert(args.paths, config, outdir, args.compact, report))
    except InvalidMessageError as exc:  # --strict
        _err(f"streamer convert: {exc}")
        return 1
    if args.verbose:
        for reason, n in sorted(report.skipped_files.items()):
            _err(f"skipped {n} file(s): {reason}")
        for reason, n in sorted(report.failed_studies.items()):
            _err(f"failed {n} stud(y/ies): {reason}")
        for warning in report.warnings:
            _err(f"warning: {warning}")
    sys.stdout.write(report.summary_line() + "\n")
    return 0 if report.studies and not report.failed_studies else 1
