"""Who an operator's command records as acting, when nobody named one."""

from __future__ import annotations

import getpass
import os

import pytest

from shared.audit import login_name


def test_the_login_that_runs_a_command_is_who_acted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(getpass, "getuser", lambda: "nguyen-van-a")

    assert login_name() == "nguyen-van-a"


def test_a_user_without_a_name_is_recorded_by_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    def nameless() -> str:
        raise KeyError(f"getpwuid(): uid not found: {os.getuid()}")

    monkeypatch.setattr(getpass, "getuser", nameless)

    assert login_name() == f"uid:{os.getuid()}"
