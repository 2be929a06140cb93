"""TLS and SASL against a real Apache Kafka with a SASL_PLAINTEXT (SCRAM) and an SSL listener.

The module starts its own broker once: SCRAM-SHA-256/512 user ``alice`` (created at format time),
and an SSL listener whose certificate, CA and client certificate this test makes; the SSL listener
requires a client certificate (mutual TLS). The processor, ``publish`` and ``tail`` run through
both; a wrong password and an untrusted CA stop them at once with exit 2 and a clear message.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from streamer import maven
from streamer.devbroker import DEFAULT_KAFKA_VERSION, kafka_cache_dir
from streamer.devbroker.apache_kafka import BrokerSecurity, start_apache_kafka
from tests.dicom_factory import study_uid
from tests.integration.harness import (
    REPO,
    Spawn,
    Topics,
    bundles_by_study,
    check_bundle,
    doc,
    read_topic,
    streamer_env,
)
from tests.integration.tls_certs import Pki, make_pki

pytestmark = [pytest.mark.kafka, pytest.mark.real_kafka]

USER = "alice"
PASSWORD = "alice-secret"


@dataclass(frozen=True)
class SecureKafka:
    plaintext: str
    sasl: str
    ssl: str
    pki: Pki


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    version = os.environ.get("STREAMER_KAFKA_VERSION", DEFAULT_KAFKA_VERSION)
    missing = (
        "java not on PATH"
        if shutil.which("java") is None
        else "mvn not on PATH and no cached Kafka jars"
        if shutil.which("mvn") is None and not maven.jars_complete(kafka_cache_dir(version))
        else None
    )
    if missing is not None:
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"cannot start a secured Apache Kafka: {missing}")
        pytest.skip(f"cannot start a secured Apache Kafka: {missing}")
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    security = BrokerSecurity(
        scram_users=((USER, PASSWORD),),
        ssl_keystore=pki.broker_keystore,
        ssl_truststore=pki.ca,
    )
    broker = start_apache_kafka(
        version, tmp_path_factory.mktemp("secure-kafka-log"), security=security
    )
    try:
        yield SecureKafka(
            broker.listeners["PLAINTEXT"],
            broker.listeners["SASL_PLAINTEXT"],
            broker.listeners["SSL"],
            pki,
        )
    finally:
        broker.stop()


def scram_env(kafka: SecureKafka, topics: Topics, **settings: object) -> dict[str, str]:
    scram: dict[str, object] = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_username": USER,
        "sasl_password": PASSWORD,
    }
    return streamer_env(kafka.sasl, "apache-kafka", topics, **{**scram, **settings})


def mtls_env(kafka: SecureKafka, topics: Topics, **settings: object) -> dict[str, str]:
    pki = kafka.pki
    tls: dict[str, object] = {
        "security_protocol": "SSL",
        "ssl_cafile": pki.ca,
        "ssl_certfile": pki.client_cert,
        "ssl_keyfile": pki.client_key,
        "ssl_key_password": pki.client_key_password,
    }
    return streamer_env(kafka.ssl, "apache-kafka", topics, **{**tls, **settings})


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_jsonl(path: Path, n: int, count: int) -> Path:
    path.write_bytes(b"".join(orjson.dumps(doc(n, i)) + b"\n" for i in range(count)))
    return path


def run_study_through(kafka: SecureKafka, env: dict[str, str], topics: Topics, tmp: Path) -> None:
    """Processor, publish and tail over the secured listener; the Bundle is checked as well."""
    n, count = 7, 3
    publish = cli(env, "publish", "--quiet", str(write_jsonl(tmp / "study.jsonl", n, count)))
    assert publish.returncode == 0, publish.stderr
    assert f"studies=1 instances={count} markers=1" in publish.stdout
    tail = cli(env, "tail", "--from-beginning", "--max-bundles", "1", timeout=90)
    assert tail.returncode == 0, tail.stderr
    [line] = tail.stdout.splitlines()
    assert f"study={study_uid(n)} " in line
    assert f"instances={count} " in line and "close-reason=marker" in line
    assert "patient" not in line
    # The same Bundle, read over the plain listener, is a valid transaction Bundle.
    records = asyncio.run(read_topic(kafka.plaintext, topics.output, until=lambda r: len(r) >= 1))
    [bundle] = bundles_by_study(records)[study_uid(n)]
    check_bundle(bundle, n, count)


def test_processor_publish_and_tail_over_sasl_scram(
    secure_kafka: SecureKafka, spawn: Spawn, tmp_path: Path
) -> None:
    topics = Topics.unique("scram")
    proc = spawn(scram_env(secure_kafka, topics))
    proc.wait_for_log("partitions assigned")
    run_study_through(secure_kafka, scram_env(secure_kafka, topics), topics, tmp_path)


def test_processor_publish_and_tail_over_mutual_tls(
    secure_kafka: SecureKafka, spawn: Spawn, tmp_path: Path
) -> None:
    topics = Topics.unique("mtls")
    proc = spawn(mtls_env(secure_kafka, topics))
    proc.wait_for_log("partitions assigned")
    run_study_through(secure_kafka, mtls_env(secure_kafka, topics), topics, tmp_path)


def test_scram_sha_512_and_json_output(secure_kafka: SecureKafka, tmp_path: Path) -> None:
    """No processor: publish over SCRAM-SHA-512 and tail the input topic's JSON back."""
    topics = Topics.unique("scram512")
    env = scram_env(secure_kafka, topics, sasl_mechanism="SCRAM-SHA-512")
    publish = cli(
        env, "publish", "--quiet", "--no-markers", str(write_jsonl(tmp_path / "a.jsonl", 3, 2))
    )
    assert publish.returncode == 0, publish.stderr
    tail = cli(
        {**env, "STREAMER_OUTPUT_TOPIC": topics.input, "STREAMER_INPUT_TOPIC": "unused"},
        "tail",
        "--from-beginning",
        "--json",
        "--max-bundles",
        "2",
    )
    assert tail.returncode == 0, tail.stderr
    assert sorted(
        orjson.loads(line)["00080018"]["Value"][0] for line in tail.stdout.splitlines()
    ) == sorted(doc(3, i)["00080018"]["Value"][0] for i in range(2))


def _fails_fast(env: dict[str, str], *args: str) -> str:
    """The command exits 2 within 30 s; returns its stderr."""
    started = time.monotonic()
    result = cli(env, *args, timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert took < 30, f"took {took:.1f} s"
    return result.stderr


def test_wrong_password_stops_every_command_with_a_clear_message(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    topics = Topics.unique("badpw")
    env = scram_env(secure_kafka, topics, sasl_password="not-the-password")
    study = write_jsonl(tmp_path / "s.jsonl", 1, 1)
    for args in ((), ("publish", "--quiet", str(study)), ("tail",)):
        stderr = _fails_fast({**env, "STREAMER_STATE_DIR": str(tmp_path / "state")}, *args)
        assert f"SASL authentication failed for user '{USER}'" in stderr, (args, stderr)
        assert "STREAMER_SASL_PASSWORD" in stderr
        assert "not-the-password" not in stderr


def test_untrusted_or_missing_certificates_stop_the_start_with_a_clear_message(
    secure_kafka: SecureKafka, tmp_path: Path
) -> None:
    topics = Topics.unique("badtls")
    state = {"STREAMER_STATE_DIR": str(tmp_path / "state")}
    untrusted = mtls_env(secure_kafka, topics, ssl_cafile=secure_kafka.pki.other_ca)
    stderr = _fails_fast({**untrusted, **state})
    assert "TLS: certificate of" in stderr and "not trusted" in stderr
    assert "STREAMER_SSL_CAFILE" in stderr
    assert "TLS: certificate of" in _fails_fast(untrusted, "tail")

    no_client_cert = {
        k: v
        for k, v in mtls_env(secure_kafka, topics).items()
        if k not in ("STREAMER_SSL_CERTFILE", "STREAMER_SSL_KEYFILE", "STREAMER_SSL_KEY_PASSWORD")
    }
    stderr = _fails_fast({**no_client_cert, **state})
    assert "requires a client certificate" in stderr and "STREAMER_SSL_CERTFILE" in stderr

    # A client that speaks plain text to the TLS listener is told to check the protocol.
    plain = streamer_env(secure_kafka.ssl, "apache-kafka", topics)
    assert "STREAMER_SECURITY_PROTOCOL=PLAINTEXT" in _fails_fast({**plain, **state})
