"""``python -m streamer convert PATH [PATH ...] [-o OUTDIR] ...``: DICOM files -> one FHIR Bundle file per study.

Every PATH is a DICOM file or a directory (searched recursively). Non-DICOM files, DICOMDIR files and files
without a usable instance are skipped and counted. For every study one R4B transaction Bundle (validated) is
written to ``OUTDIR/<StudyInstanceUID>.json`` (UIDs are digits and dots, and not patient data; a UID that is not
a valid UID gives ``study-<sha256 prefix>.json`` instead). An existing file of that name is replaced.

The mapping options come from the same STREAMER_* variables as the processor's (STREAMER_DICOM_TIMEZONE,
STREAMER_ADD_INSTANCES, STREAMER_ADD_VITAL_SIGNS, STREAMER_PROFILE, STREAMER_WADO_BASE_URL); a flag overrides
its variable. The other STREAMER_* variables (broker, state, ...) are not read.

The last line on stdout is a summary, e.g.
``studies=3 instances=17 skipped_files=2 warnings=0 failed_studies=0``; ``-v`` adds the skip reasons on stderr.
While it runs, a progress bar (files read, then studies written) goes to stderr when that is a terminal, unless
``--quiet``.

Exit status: 0 when at least one study was written and none failed; 1 when nothing could be converted or a study
could not be mapped (the others are still written); 2 for a usage error (bad option or config value, missing
PATH, or a STREAMER_* mapping variable with a bad value).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from streamer.cli import parsers
from streamer.config import load_mapping_options, unknown_env_vars
from streamer.dicom.files import list_files
from streamer.errors import ConfigError, InvalidMessageError
from streamer.fhir import BundleResult
from streamer.fhir.options import MappingOptions
from streamer.library import ConversionReport, parse_config
from streamer.library.collect import collect_files, roots
from streamer.library.mapping import iter_results

_UID_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def _text(flag: str | None, setting: str | None) -> str | None:
    """A flag given (even empty: "unset") wins over the variable."""
    if flag is None:
        return setting
    return flag.strip() or None


def _config(args: argparse.Namespace, env: MappingOptions) -> dict[str, Any]:
    """The library config: the STREAMER_* mapping settings, overridden by the flags given."""
    add_instances = env.add_instances if args.add_instances is None else args.add_instances
    vital_signs = env.add_vital_signs if args.vital_signs is None else args.vital_signs
    return {
        "dicom_timezone": _text(args.timezone, env.dicom_timezone),
        "generator": {
            "imaging_study": {"add_instances": add_instances},
            "observation": {"add_vital_signs": vital_signs},
        },
        "profile": env.profile if args.profile is None else args.profile,
        "wado_base_url": _text(args.wado_base_url, env.wado_base_url),
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


def _bar(desc: str, unit: str, total: int | None, enabled: bool) -> tqdm[Any]:
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
    )


@contextlib.contextmanager
def _logs_above_the_bar(enabled: bool) -> Iterator[None]:
    """While a bar shows, warnings go above it (as Python's last-resort handler writes them)."""
    if not enabled:
        yield
        return
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    root.addHandler(handler)
    try:
        with logging_redirect_tqdm():
            yield
    finally:
        root.removeHandler(handler)


async def _track_reading(bar: tqdm[Any], report: ConversionReport) -> None:
    """Move the reading bar as the report counts files (read or skipped), until cancelled."""
    while True:
        bar.update(report.files_read + report.skipped_file_count - bar.n)
        await asyncio.sleep(0.2)


async def _convert(
    paths: Sequence[str],
    config: dict[str, Any],
    outdir: Path,
    compact: bool,
    report: ConversionReport,
    progress: bool = False,
) -> None:
    """Map study by study and write each Bundle as soon as it is ready (nothing is held afterwards).

    With ``progress``, a bar on stderr: files read (all files are read before mapping, since a
    study's instances may be anywhere), then studies written.
    """
    option = 0 if compact else orjson.OPT_INDENT_2
    cfg = parse_config(config)
    files = len(await asyncio.to_thread(list_files, roots(paths))) if progress else None
    with _logs_above_the_bar(progress):
        with _bar("reading", "file", files, progress) as bar:
            tracker = asyncio.create_task(_track_reading(bar, report))
            try:
                collected = await collect_files(roots(paths), cfg, report)
            finally:
                tracker.cancel()
            bar.update(bar.total - bar.n if bar.total else 0)
        with _bar("converting", "study", len(collected.studies), progress) as bar:
            async for result in iter_results(collected, cfg.mapping, report):
                await asyncio.to_thread(_write_bundle, outdir, result, option)
                bar.update()


def main(argv: Sequence[str]) -> int:
    """Run ``streamer convert`` with ``argv`` (the arguments after ``convert``); returns the exit status."""
    parser = parsers.convert()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    for name in unknown_env_vars():  # a typo would otherwise be silently ignored
        _err(f"streamer convert: unknown setting ignored: {name}")
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        _err(f"streamer convert: no such file or directory: {', '.join(missing)}")
        return 2
    try:
        config = _config(args, load_mapping_options())
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
        progress = not args.quiet and sys.stderr.isatty()
        asyncio.run(_convert(args.paths, config, outdir, args.compact, report, progress))
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
