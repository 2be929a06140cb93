"""A throw-away PKI for the TLS tests: a CA, a broker certificate and a client certificate (PEM).

Made with the ``cryptography`` package (a dev dependency); EC P-256 keys, valid for a day. The
broker certificate names ``localhost`` and ``127.0.0.1``, so host name checks pass on loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Pki:
    """Files of one test PKI, all PEM."""

    ca: Path  # the CA certificate (the clients' STREAMER_SSL_CAFILE, the broker's truststore)
    broker_keystore: Path  # the broker's private key (PKCS#8) + certificate chain
    client_cert: Path
    client_key: Path  # encrypted with ``client_key_password``
    client_key_password: str
    other_ca: Path  # a CA that signed nothing here: "untrusted"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(
    subject: str, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _builder(common_name, _name(common_name), key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _leaf(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    *,
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(common_name, ca_cert.subject, key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return key, builder.sign(ca_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pkcs8(key: ec.EllipticCurvePrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.NoEncryption()
        if password is None
        else serialization.BestAvailableEncryption(password.encode())
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def make_pki(directory: Path) -> Pki:
    """Write a CA, a broker keystore, a client certificate and key, and an unrelated CA."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _ca("streamer test CA")
    broker_key, broker_cert = _leaf("localhost", ca_key, ca_cert, server=True)
    client_key, client_cert = _leaf("streamer-client", ca_key, ca_cert, server=False)
    _, other_cert = _ca("some other CA")
    password = "client-key-secret"
    pki = Pki(
        ca=directory / "ca.pem",
        broker_keystore=directory / "broker.pem",
        client_cert=directory / "client-cert.pem",
        client_key=directory / "client-key.pem",
        client_key_password=password,
        other_ca=directory / "other-ca.pem",
    )
    pki.ca.write_bytes(_pem(ca_cert))
    pki.broker_keystore.write_bytes(_pkcs8(broker_key) + _pem(broker_cert) + _pem(ca_cert))
    pki.client_cert.write_bytes(_pem(client_cert))
    pki.client_key.write_bytes(_pkcs8(client_key, password))
    pki.other_ca.write_bytes(_pem(other_cert))
    return pki
