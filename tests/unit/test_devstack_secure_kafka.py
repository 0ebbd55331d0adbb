"""The SASL/SCRAM broker's configuration, rendered without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack import DevstackError
from devstack.secure_kafka import SecureKafkaSpec, render_properties, scram_arguments

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
