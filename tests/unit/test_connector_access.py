"""The connector's operator credential: issued once with the digest its Secret holds, and
checked against that digest; a setting that is not such a digest stops the start, without
showing what was set (a credential pasted in its place)."""

from __future__ import annotations

import hashlib
import io

import pytest
from pydantic import SecretStr, ValidationError

from services.connector import cli
from services.connector.access import NotAnOperatorError, OperatorCredential, issue_credential
from services.connector.settings import ConnectorSettings

pytestmark = pytest.mark.unit


def test_without_a_digest_the_endpoints_are_open_as_in_the_local_run() -> None:
    open_ = OperatorCredential(None)
    assert not open_.required
    open_.check(None)
    assert ConnectorSettings().connector.operator_credential_sha256 is None


@pytest.mark.parametrize(
    ("presented", "reason"),
    [(None, "carries no credential"), ("wrong", "credential is wrong"), ("", "is wrong")],
)
def test_anything_but_the_credential_is_refused(presented: str | None, reason: str) -> None:
    _, digest = issue_credential()
    with pytest.raises(NotAnOperatorError) as refused:
        OperatorCredential(SecretStr(digest)).check(presented)
    assert refused.value.issue.code == "E140"
    assert reason in refused.value.issue.message_en


def test_the_issued_credential_passes_and_its_digest_does_not() -> None:
    credential, digest = issue_credential()
    check = OperatorCredential(SecretStr(digest))
    check.check(credential.get_secret_value())
    with pytest.raises(NotAnOperatorError):
        check.check(digest)


def test_the_command_prints_the_credential_alone_on_stdout_and_its_digest_aside() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["operator-credential"], out=out, err=err) == 0
    credential = out.getvalue().strip()
    assert len(credential) >= 43  # 32 random bytes in Base64
    digest = hashlib.sha256(credential.encode()).hexdigest()
    assert f"BAOCAO_CONNECTOR__OPERATOR_CREDENTIAL_SHA256={digest}" in err.getvalue()
    assert credential not in err.getvalue()


def test_a_credential_set_in_place_of_its_digest_stops_the_start_unshown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential, _ = issue_credential()
    monkeypatch.setenv(
        "BAOCAO_CONNECTOR__OPERATOR_CREDENTIAL_SHA256", credential.get_secret_value()
    )
    with pytest.raises(ValidationError) as refused:
        ConnectorSettings()
    assert "64 lowercase hex digits" in str(refused.value)
    assert credential.get_secret_value() not in str(refused.value)
