"""scripts/make-venv: the interpreter the virtual environment is made with."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.settings import REPO_ROOT

MAKE_VENV = REPO_ROOT / "scripts" / "make-venv"


def _make(target: Path, python: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MAKE_VENV), str(target)],
        env={**os.environ, "BAOCAO_PYTHON": python},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_environment_is_made_with_the_interpreter_chosen(tmp_path: Path) -> None:
    target = tmp_path / "venv"
    made = _make(target, sys.executable)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith(f"install: {target} made with {sys.executable} (Python 3.")
    version = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.strip() == str(sys.version_info[:2])


def test_an_interpreter_older_than_3_11_is_refused_and_nothing_is_made(tmp_path: Path) -> None:
    old = tmp_path / "python3.10"
    # Stands for an old interpreter: it fails the version check, as 3.10 would.
    old.write_text("#!/bin/sh\nexit 1\n")
    old.chmod(0o755)
    target = tmp_path / "venv"
    made = _make(target, str(old))
    assert made.returncode == 1
    assert made.stderr == (
        f"install: no Python 3.11 or newer that makes a virtual environment ({old})\n"
    )
    assert not target.exists()


def test_an_interpreter_that_is_not_there_is_named_in_the_refusal(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-python")
    made = _make(tmp_path / "venv", missing)
    assert made.returncode == 1
    assert missing in made.stderr
