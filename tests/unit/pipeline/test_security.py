"""TLS and SASL settings: validation, the aiokafka keyword arguments, and the failure messages."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed

from streamer.config import Settings, load_settings
from streamer.errors import ConfigError
from streamer.kafka.security import client_kwargs, connection_error, explain, ssl_context
from tests.integration.tls_certs import Pki, make_pki

SCRAM = {
    "security_protocol": "SASL_SSL",
    "sasl_mechanism": "scram-sha-512",
    "sasl_username": "alice",
    "sasl_password": "s3cret-pw",
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("STREAMER_"):
            monkeypatch.delenv(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_plaintext_by_default_and_no_security_arguments() -> None:
    settings = load_settings()
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.ssl_check_hostname is True
    assert client_kwargs(settings) == {"security_protocol": "PLAINTEXT"}


def test_sasl_settings_become_client_arguments_and_the_password_never_prints(pki: Pki) -> None:
    settings = load_settings(**SCRAM, ssl_cafile=str(pki.ca))
    assert settings.sasl_mechanism == "SCRAM-SHA-512"  # any case accepted
    assert "s3cret-pw" not in repr(settings) and "s3cret-pw" not in str(settings.model_dump())
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "alice"
    assert kwargs["sasl_plain_password"] == "s3cret-pw"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)


def test_environment_names_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMER_SECURITY_PROTOCOL", "sasl_plaintext")
    monkeypatch.setenv("STREAMER_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("STREAMER_SASL_USERNAME", "bob")
    monkeypatch.setenv("STREAMER_SASL_PASSWORD", "pw")
    settings = load_settings()
    assert settings.security_protocol == "SASL_PLAINTEXT"
    assert settings.sasl_password is not None
    assert settings.sasl_password.get_secret_value() == "pw"


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, ["STREAMER_SASL_MECHANISM"]),
        (
            {**SCRAM, "sasl_password": ""},
            ["STREAMER_SECURITY_PROTOCOL=SASL_SSL needs STREAMER_SASL_PASSWORD"],
        ),
        ({**SCRAM, "security_protocol": "SSL"}, ["STREAMER_SASL_MECHANISM", "uses no SASL"]),
        ({"security_protocol": "TLS"}, ["STREAMER_SECURITY_PROTOCOL"]),
        ({**SCRAM, "sasl_mechanism": "GSSAPI"}, ["STREAMER_SASL_MECHANISM"]),
        ({"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"}, ["STREAMER_SSL_CAFILE"]),
        (
            {"security_protocol": "SSL", "ssl_certfile": "/no/such/cert.pem"},
            ["STREAMER_SSL_CERTFILE"],
        ),
    ],
)
def test_bad_security_settings_name_the_variable(
    settings: dict[str, object], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(**settings)
    for name in names:
        assert name in str(info.value)


def test_tls_files_without_a_tls_protocol_are_refused(pki: Pki) -> None:
    with pytest.raises(ConfigError, match="STREAMER_SSL_CAFILE set but STREAMER_SECURITY_PROTOCOL"):
        load_settings(ssl_cafile=str(pki.ca))
    with pytest.raises(ConfigError, match="STREAMER_SSL_KEYFILE needs STREAMER_SSL_CERTFILE"):
        load_settings(security_protocol="SSL", ssl_keyfile=str(pki.client_key))


def test_ssl_context_loads_an_encrypted_client_key_and_honours_the_hostname_switch(
    pki: Pki,
) -> None:
    settings = load_settings(
        security_protocol="SSL",
        ssl_cafile=str(pki.ca),
        ssl_certfile=str(pki.client_cert),
        ssl_keyfile=str(pki.client_key),
        ssl_key_password=pki.client_key_password,
        ssl_check_hostname=False,
    )
    context = ssl_context(settings)
    assert context.check_hostname is False
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert ssl_context(settings.model_copy(update={"ssl_check_hostname": True})).check_hostname


@pytest.mark.parametrize("password", [None, "wrong"])
def test_an_encrypted_key_without_its_password_is_a_config_error_not_a_prompt(
    pki: Pki, password: str | None
) -> None:
    settings = load_settings(
        security_protocol="SSL",
        ssl_cafile=str(pki.ca),
        ssl_certfile=str(pki.client_cert),
        ssl_keyfile=str(pki.client_key),
        ssl_key_password=password,
    )
    with pytest.raises(ConfigError, match="STREAMER_SSL_KEY_PASSWORD"):
        ssl_context(settings)


def test_a_ca_file_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    settings = load_settings(security_protocol="SSL", ssl_cafile=str(bogus))
    with pytest.raises(ConfigError, match="STREAMER_SSL_CAFILE"):
        client_kwargs(settings)


def _cert_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(1, f"certificate verify failed: {message}")
    exc.verify_code = code
    exc.verify_message = message
    return exc


def _settings(**extra: object) -> Settings:
    return load_settings(**{**SCRAM, "security_protocol": "SASL_PLAINTEXT", **extra})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            SaslAuthenticationFailed("invalid credentials"),
            "SASL authentication failed for user 'alice'",
        ),
        (_cert_error(19, "self-signed certificate in certificate chain"), "not trusted"),
        (_cert_error(62, "Hostname mismatch"), "STREAMER_SSL_CHECK_HOSTNAME=false"),
        (_cert_error(10, "certificate has expired"), "has expired"),
        (ConnectionResetError(), "is STREAMER_SECURITY_PROTOCOL=SASL_PLAINTEXT right"),
        (KafkaConnectionError("Connection at b:1 closed"), "closed it during the handshake"),
    ],
)
def test_failures_are_explained_naming_what_to_check(exc: BaseException, expected: str) -> None:
    reason = explain(exc, _settings(), "b:1")
    assert reason is not None and expected in reason
    assert "s3cret-pw" not in reason


def test_a_tls_alert_behind_a_closed_connection_names_the_client_certificate() -> None:
    closed = KafkaConnectionError("Connection at b:1 closed")
    closed.__cause__ = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] alert")
    closed.__cause__.reason = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    reason = explain(closed, _settings(security_protocol="SASL_SSL"), "b:1")
    assert reason is not None and "requires a client certificate" in reason


def test_a_refused_connection_is_not_explained_as_security() -> None:
    assert explain(ConnectionRefusedError(111, "refused"), _settings(), "b:1") is None


async def test_an_unreachable_broker_names_the_bootstrap_setting() -> None:
    settings = load_settings(bootstrap_servers="127.0.0.1:9")
    error = await connection_error(settings, KafkaConnectionError("Unable to bootstrap"))
    assert "STREAMER_BOOTSTRAP_SERVERS" in str(error) and "127.0.0.1:9" in str(error)
