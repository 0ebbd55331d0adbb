"""Detached server processes: pid files, process groups, logs and polling with deadlines.

Every server runs in its own session (so its own process group): closing the terminal that
started it does not kill it, and `stop` signals the whole group, leaving no orphan behind.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# psutil ships no types and the project does not pin types-psutil.
import psutil  # type: ignore[import-untyped]

from devstack import MissingToolError

STOP_GRACE_S = 30.0
KILL_GRACE_S = 5.0
POLL_INTERVAL_S = 0.25
_PROBLEM = re.compile(r"\b(?:ERROR|FATAL)\b|^Caused by:|level=(?i:error|fatal)")
_NOT_REAPED = (psutil.TimeoutExpired, psutil.NoSuchProcess, ChildProcessError)


class Outcome(enum.Enum):
    STARTED = "started"
    ALREADY_RUNNING = "already running"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Status:
    """One server's state, as `status` prints it."""

    server: str
    state: str
    address: str
    pid: int | None = None

    def line(self) -> str:
        pid = "-" if self.pid is None else f"pid {self.pid}"
        return f"{self.server:<11} {self.state:<14} {pid:<11} {self.address}"


class Server(Protocol):
    """What the command line drives; each server module provides one."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str: ...

    def start(self) -> Outcome: ...

    def stop(self) -> bool:
        """Stop the server; False when it was not running."""
        ...

    def status(self) -> Status: ...


def say(server: str, message: str) -> None:
    print(f"{server}: {message}", flush=True)


def require(program: str, install_hint: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise MissingToolError(f"`{program}` is not on PATH: {install_hint}")
    return found


def is_alive(process: psutil.Process) -> bool:
    # A zombie has exited; it stays in the table only until its parent (maybe a
    # non-reaping init in a container) collects it.
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def command_line_contains(process: psutil.Process, marker: str) -> bool:
    try:
        return marker in " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


@dataclass(frozen=True)
class PidFile:
    """A pid file plus the text the owning process's command line must contain.

    The marker guards against pid reuse: after a reboot the same number may belong to an
    unrelated process, which must never be reported as ours, let alone signalled.
    """

    path: Path
    marker: str

    def process(self) -> psutil.Process | None:
        """The live server process, or None (a stale file is removed)."""
        try:
            pid = int(self.path.read_text().strip())
            process = psutil.Process(pid)
        except (FileNotFoundError, ValueError, psutil.NoSuchProcess):
            self.remove()
            return None
        if is_alive(process) and command_line_contains(process, self.marker):
            return process
        self.remove()
        return None

    def write(self, pid: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid}\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Hold `lock` for one command: two test runs starting the servers at once must not
    both launch a broker (the loser would remove the winner's pid file)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    # Children never inherit the descriptor (close_fds), so a server cannot keep it held.
    with lock.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def spawn(argv: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a detached process in its own session, stdout and stderr appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )


def _signal_group(leader: psutil.Process, signum: signal.Signals) -> None:
    try:
        leads_own_group = os.getpgid(leader.pid) == leader.pid != os.getpgrp()
        if leads_own_group:
            os.killpg(leader.pid, signum)
        else:
            leader.send_signal(signum)
    except (ProcessLookupError, psutil.NoSuchProcess):
        pass


def _wait_gone(processes: Sequence[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    alive = list(processes)
    while True:
        for process in alive:
            # Reaps the process when it is our own child (a failed start); harmless else.
            with contextlib.suppress(*_NOT_REAPED):
                process.wait(timeout=0)
        alive = [process for process in alive if is_alive(process)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(POLL_INTERVAL_S)


def terminate_group(pid: int, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group led by `pid`, SIGKILL whatever is left after `grace_s`."""
    try:
        leader = psutil.Process(pid)
        members = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    _signal_group(leader, signal.SIGTERM)
    if _wait_gone(members, grace_s):
        _signal_group(leader, signal.SIGKILL)
        for process in members:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        _wait_gone(members, KILL_GRACE_S)


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` until it holds (True) or the deadline passes (False)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_INTERVAL_S)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class LogCursor:
    """Reads a log from where it ended when the cursor was made: this start's lines only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = path.stat().st_size if path.exists() else 0

    def text(self) -> str:
        try:
            with self.path.open("rb") as log:
                log.seek(self.offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def contains(self, needle: str) -> bool:
        return needle in self.text()

    def report(self, limit: int = 15) -> str:
        """This start's error lines (its last lines when there are none), for a failure.

        A JVM's tail is mostly stack frames; the ERROR and "Caused by" lines say why.
        """
        lines = self.text().splitlines()
        problems = [line for line in lines if _PROBLEM.search(line)]
        shown = problems[:limit] if problems else lines[-limit:]
        return "\n".join([f"--- from {self.path} ---", *shown])
