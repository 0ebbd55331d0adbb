"""The SASL/SCRAM broker's configuration, rendered without starting anything; its TLS
listener's certificates, checked by a TLS handshake in memory as a Kafka client makes it."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from devstack import DevstackError
from devstack.secure_kafka import SecureKafkaSpec, render_properties, scram_arguments
from devstack.tls import TlsFiles, issue

pytestmark = pytest.mark.unit


def properties(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if not line.startswith("#"))
    return {key: value for key, _, value in pairs}


def test_every_client_authenticates_and_nothing_is_allowed_without_an_acl() -> None:
    spec = SecureKafkaSpec("admin-pw", {"motcua-a": "a-pw"}, 39092, 39093)
    rendered = properties(render_properties(spec, Path("/d")))
    assert rendered["listeners"] == "SASL_PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093"
    assert rendered["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert rendered["allow.everyone.if.no.acl.found"] == "false"
    assert rendered["super.users"] == "User:admin"
    assert "PLAINTEXT:PLAINTEXT" not in rendered["listener.security.protocol.map"]
    assert scram_arguments(spec) == [
        "--add-scram",
        "SCRAM-SHA-512=[name=admin,password=admin-pw]",
        "--add-scram",
        "SCRAM-SHA-512=[name=motcua-a,password=a-pw]",
    ]


@pytest.mark.parametrize("password", ["with,comma", 'with"quote', "with space", ""])
def test_passwords_that_would_break_the_tools_arguments_are_refused(password: str) -> None:
    with pytest.raises(DevstackError, match="plain characters"):
        SecureKafkaSpec("admin-pw", {"motcua-a": password})


def test_a_tls_port_adds_a_sasl_ssl_listener_with_a_pem_key_store() -> None:
    spec = SecureKafkaSpec("admin-pw", {}, 39092, 39093, tls_port=39094)
    files = TlsFiles(Path("/t/ca.pem"), Path("/t/keystore.pem"))
    rendered = properties(render_properties(spec, Path("/d"), files))
    assert rendered["listeners"] == (
        "SASL_PLAINTEXT://127.0.0.1:39092,SASL_SSL://127.0.0.1:39094,CONTROLLER://127.0.0.1:39093"
    )
    assert rendered["advertised.listeners"] == (
        "SASL_PLAINTEXT://127.0.0.1:39092,SASL_SSL://127.0.0.1:39094"
    )
    assert "SASL_SSL:SASL_SSL" in rendered["listener.security.protocol.map"].split(",")
    assert rendered["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert rendered["listener.name.sasl_ssl.ssl.keystore.location"] == "/t/keystore.pem"
    assert rendered["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"].endswith("required;")
    assert "ssl.key.password" not in render_properties(spec, Path("/d"), files)
    with pytest.raises(DevstackError, match="certificate files"):
        render_properties(spec, Path("/d"))
    with pytest.raises(DevstackError, match="different ports"):
        SecureKafkaSpec("admin-pw", {}, 39092, 39093, tls_port=39092)
    plain = properties(render_properties(SecureKafkaSpec("admin-pw", {}, 39092, 39093), Path("/d")))
    assert not any("ssl" in key for key in plain)


def handshake(files: TlsFiles, server_name: str) -> None:
    """A TLS handshake in memory: the broker's side with its key store, a client's with the
    CA alone (as `shared.kafka_client` builds it), asking for `server_name`."""
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(files.keystore)
    client_side = ssl.create_default_context(cafile=str(files.ca))
    server_in, server_out, client_in, client_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_side.wrap_bio(server_in, server_out, server_side=True)
    client = client_side.wrap_bio(client_in, client_out, server_hostname=server_name)
    for _ in range(10):
        finished = 0
        for end in (client, server):
            try:
                end.do_handshake()
                finished += 1
            except ssl.SSLWantReadError:
                pass  # until the other end's next flight arrives
        server_in.write(client_out.read())
        client_in.write(server_out.read())
        if finished == 2:
            return
    raise AssertionError("the handshake did not finish")


def test_the_brokers_certificate_is_trusted_through_the_ca_for_the_loopback_address_only(
    tmp_path: Path,
) -> None:
    files = issue(tmp_path / "tls", "127.0.0.1")
    assert files.keystore.stat().st_mode & 0o077 == 0  # its private key is this user's only
    handshake(files, "127.0.0.1")
    handshake(files, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(files, "kafka.example.org")
    other = issue(tmp_path / "other", "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        handshake(TlsFiles(other.ca, files.keystore), "127.0.0.1")
