"""Certificates for the secure broker's TLS listener, made when it starts: a CA of its own
and a server certificate for the loopback address signed by it, as PEM files (Kafka reads
a PEM key store: `ssl.keystore.type=PEM`). Clients trust the CA's file, as the services
trust `BAOCAO_KAFKA__SSL_CAFILE` in production, where the province's CA issues the
brokers' certificates; nothing here is meant for that.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any run, short enough that a copied file soon stops being trusted.
VALIDITY = timedelta(days=7)
# A clock a little behind the machine's must not find the certificates not yet valid.
BACKDATE = timedelta(hours=1)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate clients trust
    keystore: Path  # the broker's private key, then its certificate and the CA's


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ca(key: rsa.RSAPrivateKey, now: datetime) -> x509.Certificate:
    name = _name("baocao devstack CA")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server(
    key: rsa.RSAPrivateKey, ca: x509.Certificate, ca_key: rsa.RSAPrivateKey, host: str
) -> x509.Certificate:
    now = ca.not_valid_before_utc + BACKDATE
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(host)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def issue(directory: Path, host: str) -> TlsFiles:
    """A new CA and a certificate for `host` (an IP address) signed by it, in `directory`.
    The key store is readable by this user only: it holds the broker's private key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = _key(), _key()
    ca = _ca(ca_key, datetime.now(UTC))
    server = _server(server_key, ca, ca_key, host)
    # PKCS#8 without a password: Kafka reads it so when `ssl.key.password` is not set.
    private = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files = TlsFiles(directory / "ca.pem", directory / "broker-keystore.pem")
    files.ca.write_bytes(_pem(ca))
    files.keystore.touch(mode=0o600)
    files.keystore.chmod(0o600)
    files.keystore.write_bytes(private + _pem(server) + _pem(ca))
    return files
