"""The package layout keeps its promises: aiokafka only in kafka/, environment only in config/,
and the processor never loads the development tooling or the demo."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]
PACKAGE = REPO / "streamer"


def _sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_only_the_kafka_package_imports_aiokafka() -> None:
    offenders = [
        str(path.relative_to(REPO))
        for path in _sources()
        if not path.is_relative_to(PACKAGE / "kafka")
        and any(
            name == "aiokafka" or name.startswith("aiokafka.")
            for name in _imported_modules(ast.parse(path.read_text(), str(path)))
        )
    ]
    assert offenders == []


def _reads_environment(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        # os.environ, os.getenv, os.environb
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            and node.attr in {"environ", "environb", "getenv"}
        ):
            return True
        # from os import environ / getenv
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "environb", "getenv"}
        ):
            return True
    return False


def test_only_config_reads_the_environment() -> None:
    # devbroker/, devfhir/ and maven.py are development tooling: they may read TANSU_BIN,
    # JAVA_HOME and their cache dir.
    offenders = [
        str(path.relative_to(REPO))
        for path in _sources()
        if not path.is_relative_to(PACKAGE / "config")
        and not path.is_relative_to(PACKAGE / "devbroker")
        and not path.is_relative_to(PACKAGE / "devfhir")
        and path != PACKAGE / "maven.py"
        and _reads_environment(ast.parse(path.read_text(), str(path)))
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "modules",
    [
        "streamer.app",
        "streamer.__main__, streamer.cli.run, streamer.app",
        "streamer.kafka.admin, streamer.kafka.consumer, streamer.kafka.producer",
    ],
)
def test_the_processor_never_loads_dev_tooling_or_the_demo(modules: str) -> None:
    code = (
        f"import sys, {modules}\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('streamer.devbroker', "
        "'streamer.devfhir', 'streamer.maven', 'streamer.sink', 'streamer.cli.sink', "
        "'streamer.cli.demo', 'streamer.cli.publish', 'streamer.cli.convert')))\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
