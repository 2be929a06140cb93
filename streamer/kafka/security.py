"""TLS and SASL for every Kafka client we create, and clear messages when the broker refuses us.

``client_kwargs(settings)`` gives the aiokafka keyword arguments (``security_protocol``,
``ssl_context``, ``sasl_*``) that each consumer, producer and admin client is built with.

``start_client`` starts a client within a deadline. aiokafka reports a refused connection only as
"Unable to bootstrap" (the cause goes to its log), so on failure one connection is opened by hand
to say why: an untrusted certificate, a wrong password, a listener speaking another protocol.
Such a failure is a ConfigError (exit 2), raised within the deadline instead of retrying forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.metadata import MetadataRequest

from streamer.config import Settings
from streamer.errors import ConfigError

log = logging.getLogger(__name__)

# A client that has not connected after this long will not: its cause is looked up and reported.
STARTUP_TIMEOUT_S = 20.0
_PROBE_TIMEOUT_S = 10.0
# OpenSSL's X509_V_ERR_* codes that get their own sentence.
_CERT_EXPIRED = 10
_HOSTNAME_MISMATCH = 62
_IP_MISMATCH = 64
# TLS alerts a broker sends when it wants a client certificate and got none, or one it distrusts.
_CLIENT_CERT_ALERTS = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "HANDSHAKE_FAILURE",
)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """The security keyword arguments of every aiokafka client (consumer, producer, admin)."""
    protocol = settings.security_protocol
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl_context(settings)
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.sasl_password is not None  # Settings checks the SASL settings are given
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    return kwargs


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The client TLS context; an unreadable CA, certificate or key is a ConfigError naming it."""
    try:
        context: ssl.SSLContext = create_ssl_context(cafile=settings.ssl_cafile)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError(
            f"STREAMER_SSL_CAFILE {settings.ssl_cafile!r}: not a PEM file of CA certificates "
            f"({_reason(exc)})"
        ) from exc
    if settings.ssl_certfile is not None:
        secret = settings.ssl_key_password
        # Without a password, an encrypted key must fail, not make OpenSSL ask the terminal.
        password = _no_password if secret is None else secret.get_secret_value()
        try:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, password=password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError(
                "cannot load the client certificate and key (STREAMER_SSL_CERTFILE, "
                f"STREAMER_SSL_KEYFILE): {_reason(exc)}; an encrypted key needs its password "
                "in STREAMER_SSL_KEY_PASSWORD, and the key must match the certificate"
            ) from exc
    # create_ssl_context always checks the host name; verification of the chain stays on.
    context.check_hostname = settings.ssl_check_hostname
    return context


async def start_client(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    settings: Settings,
    *,
    timeout_s: float = STARTUP_TIMEOUT_S,
) -> None:
    """``await start()`` within ``timeout_s``; a failure stops the client and raises ConfigError.

    The error names the cause when one connection made by hand finds it (TLS, SASL, protocol),
    else that the brokers at STREAMER_BOOTSTRAP_SERVERS cannot be reached.
    """
    try:
        await asyncio.wait_for(start(), timeout_s)
    except (KafkaError, OSError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await stop()
        raise await connection_error(settings, exc) from exc


async def connection_error(settings: Settings, exc: BaseException) -> ConfigError:
    """A ConfigError for a client that could not start: the probed cause, else ``exc``."""
    cause = await diagnose(settings)
    where = f"Kafka at {settings.bootstrap_servers}"
    if cause is not None:
        return ConfigError(f"cannot connect to {where}: {cause}")
    detail = "no answer in time" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
    return ConfigError(f"cannot reach {where} (STREAMER_BOOTSTRAP_SERVERS): {detail}")


async def diagnose(settings: Settings, *, timeout_s: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why connecting to the bootstrap servers fails, in one sentence; None when no reason shows.

    Opens one connection to each bootstrap server in turn, with the clients' security settings,
    and asks for metadata, as a client's bootstrap does. Servers that cannot be reached at all
    are passed over (the caller reports them); the first security problem found is returned.
    """
    try:
        kwargs = client_kwargs(settings)
    except ConfigError as exc:
        return str(exc)
    for server in settings.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        if not host or not port.isdigit():
            continue
        host = host.strip("[]")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    int(port),
                    client_id=f"{settings.client_id}-probe",
                    request_timeout_ms=int(timeout_s * 1000),
                    **kwargs,
                ),
                timeout_s,
            )
            try:
                await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
            finally:
                conn.close()
        except Exception as exc:  # noqa: BLE001 - every failure is explained or passed over
            reason = explain(exc, settings, f"{host}:{port}")
            if reason is not None:
                return reason
            log.debug("probe of %s:%s failed: %r", host, port, exc)
    return None


def explain(exc: BaseException, settings: Settings, server: str) -> str | None:
    """One sentence naming the setting to look at, for a failure of a connection to ``server``."""
    protocol = settings.security_protocol
    if isinstance(exc, KafkaConnectionError) and isinstance(exc.__cause__, ssl.SSLError):
        exc = exc.__cause__  # the broker ended the TLS session with an alert: that says why
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in (_HOSTNAME_MISMATCH, _IP_MISMATCH):
            return (
                f"TLS: the certificate of {server} is not for that host ({exc.verify_message}); "
                "connect by a name it holds (STREAMER_BOOTSTRAP_SERVERS) or set "
                "STREAMER_SSL_CHECK_HOSTNAME=false"
            )
        if code == _CERT_EXPIRED:
            return f"TLS: the certificate of {server} has expired ({exc.verify_message})"
        return (
            f"TLS: certificate of {server} not trusted ({exc.verify_message}); "
            "STREAMER_SSL_CAFILE must hold the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return _explain_tls_alert(exc, settings, server)
    if isinstance(exc, SaslAuthenticationFailed | AuthenticationFailedError):
        return (
            f"SASL authentication failed for user {settings.sasl_username!r} "
            f"({settings.sasl_mechanism}): check STREAMER_SASL_USERNAME and STREAMER_SASL_PASSWORD"
        )
    if isinstance(exc, UnsupportedSaslMechanismError):
        return (
            f"SASL: {server} does not offer the mechanism {settings.sasl_mechanism} "
            "(STREAMER_SASL_MECHANISM)"
        )
    if isinstance(exc, IllegalSaslStateError):
        return (
            f"SASL: {server} does not expect SASL; is STREAMER_SECURITY_PROTOCOL={protocol} "
            "right for that listener?"
        )
    if isinstance(
        exc,
        KafkaConnectionError | ConnectionResetError | BrokenPipeError | asyncio.IncompleteReadError,
    ):
        # The TCP connection was made (a refused one is ConnectionRefusedError), then cut.
        return (
            f"{server} accepted the connection, then closed it during the handshake; is "
            f"STREAMER_SECURITY_PROTOCOL={protocol} right for that listener?"
        )
    return None


def _explain_tls_alert(exc: ssl.SSLError, settings: Settings, server: str) -> str:
    reason = exc.reason or str(exc)
    protocol = settings.security_protocol
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return (
            f"TLS: {server} does not speak TLS; is STREAMER_SECURITY_PROTOCOL={protocol} right "
            "for that listener?"
        )
    if any(alert in reason for alert in _CLIENT_CERT_ALERTS):
        if settings.ssl_certfile is None:
            return (
                f"TLS: {server} requires a client certificate ({reason}); set "
                "STREAMER_SSL_CERTFILE and STREAMER_SSL_KEYFILE"
            )
        return (
            f"TLS: {server} does not accept our client certificate ({reason}); it must be "
            "signed by a CA the broker trusts (STREAMER_SSL_CERTFILE)"
        )
    return f"TLS: the handshake with {server} failed ({reason})"


def _no_password() -> str:
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
