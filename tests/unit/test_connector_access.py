"""The connector's operators: each issued a credential `<name>.<secret>` once, with the
digest its Secret holds under that name; a credential is checked against its holder's
digest and names the holder (the audit log's "who"); a setting that is not such a digest
stops the start without showing what was set (a credential pasted in its place), and so
does sender authentication on with no operator configured."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys

import pytest
from pydantic import SecretStr, ValidationError

from services.connector import cli
from services.connector.access import (
    UNAUTHENTICATED,
    NotAnOperatorError,
    Operators,
    issue_credential,
)
from services.connector.settings import ConnectorSettings
from shared.settings import REPO_ROOT

pytestmark = pytest.mark.unit


def operators(*names: str) -> tuple[Operators, dict[str, str]]:
    """Operators with the given names, and each one's credential."""
    issued = {name: issue_credential(name) for name in names}
    digests = {name: SecretStr(digest) for name, (_, digest) in issued.items()}
    return Operators(digests), {n: c.get_secret_value() for n, (c, _) in issued.items()}


def test_without_operators_the_endpoints_are_open_as_in_the_local_run() -> None:
    open_ = Operators({})
    assert not open_.required
    assert open_.check(None) == UNAUTHENTICATED
    assert ConnectorSettings().connector.operators == {}


def test_each_issued_credential_passes_and_names_its_holder() -> None:
    check, credentials = operators("nguyen-van-a", "tran-thi-b")
    assert check.required
    assert check.check(credentials["nguyen-van-a"]) == "nguyen-van-a"
    assert check.check(credentials["tran-thi-b"]) == "tran-thi-b"


def test_anything_but_an_operators_credential_is_refused() -> None:
    check, credentials = operators("nguyen-van-a", "tran-thi-b")
    a = credentials["nguyen-van-a"]
    secret_of_a = a.partition(".")[2]
    presented = {
        None: "carries no credential",
        "": "is wrong",
        a + "x": "is wrong",
        a[:-1]: "is wrong",
        secret_of_a: "is wrong",  # the secret without the name
        f"tran-thi-b.{secret_of_a}": "is wrong",  # A's secret under B's name
        f"nobody.{secret_of_a}": "is wrong",  # a name nobody holds
        hashlib.sha256(a.encode()).hexdigest(): "is wrong",  # the digest itself
    }
    for credential, reason in presented.items():
        with pytest.raises(NotAnOperatorError) as refused:
            check.check(credential)
        assert refused.value.issue.code == "E140", credential
        assert reason in refused.value.issue.message_en, credential


@pytest.mark.parametrize("name", ["", "Nguyen", "a.b", "-a", "a" * 65, "(unauthenticated)"])
def test_only_plain_names_are_issued_credentials(name: str) -> None:
    with pytest.raises(ValueError, match="not a usable operator name"):
        issue_credential(name)
    err = io.StringIO()
    assert cli.main(["operator-credential", "--", name], out=io.StringIO(), err=err) == 2
    assert "not a usable operator name" in err.getvalue()


def test_the_command_prints_the_credential_alone_on_stdout_and_its_digest_aside() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["operator-credential", "nguyen-van-a"], out=out, err=err) == 0
    credential = out.getvalue().strip()
    name, _, secret = credential.partition(".")
    assert name == "nguyen-van-a"
    assert len(secret) >= 43  # 32 random bytes in Base64
    digest = hashlib.sha256(credential.encode()).hexdigest()
    entry = err.getvalue().splitlines()[-1].partition("BAOCAO_CONNECTOR__OPERATORS: ")[2]
    assert json.loads(entry) == {"nguyen-van-a": digest}
    assert secret not in err.getvalue()


def test_operators_are_read_as_one_json_object_or_one_variable_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BAOCAO_CONNECTOR__OPERATORS", json.dumps({"nguyen-van-a": "a" * 64}))
    monkeypatch.setenv("BAOCAO_CONNECTOR__OPERATORS__TRAN", "b" * 64)
    configured = ConnectorSettings().connector.operators
    assert {n: d.get_secret_value() for n, d in configured.items()} == {
        "nguyen-van-a": "a" * 64,
        "tran": "b" * 64,
    }


def test_a_credential_set_in_place_of_its_digest_stops_the_start_unshown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    credential, _ = issue_credential("nguyen-van-a")
    monkeypatch.setenv(
        "BAOCAO_CONNECTOR__OPERATORS", json.dumps({"nguyen-van-a": credential.get_secret_value()})
    )
    with pytest.raises(ValidationError) as refused:
        ConnectorSettings()
    assert "64 lowercase hex digits" in str(refused.value)
    assert credential.get_secret_value() not in str(refused.value)
    assert credential.get_secret_value().partition(".")[2] not in str(refused.value)


def test_the_former_single_digest_says_what_replaced_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BAOCAO_CONNECTOR__OPERATOR_CREDENTIAL_SHA256", "0" * 64)
    with pytest.raises(ValidationError, match="replaced by operators"):
        ConnectorSettings()


def test_with_sender_authentication_on_and_no_operator_the_connector_refuses_to_start() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
    env["BAOCAO_SUBMISSION__SENDER_AUTHENTICATION"] = "true"
    started = subprocess.run(
        [sys.executable, "-m", "services.connector"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "sender authentication is on" in started.stderr
    assert "its operator endpoints would be open to anyone" in started.stderr
    assert "python -m services.connector operator-credential NAME" in started.stderr
