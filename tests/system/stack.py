"""The whole system as processes, for system tests: start, pause, kill, restart, address.

Each stack has its own namespace (topics, consumer groups, schemas) and free ports, so it
never meets another run's state. Every process reads the same `BAOCAO_NOW` and
`BAOCAO_NOW_ANCHOR`, so their clocks agree. Logs go to one file per service under the
test's temporary folder; `tail()` shows them when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from shared.settings import REPO_ROOT

SERVICES = ("submission", "validation", "aggregation", "connector", "hub_simulator")
PORT_SETTING = {
    "submission": "BAOCAO_SUBMISSION__PORT",
    "validation": "BAOCAO_VALIDATION__PORT",
    "aggregation": "BAOCAO_AGGREGATION__PORT",
    "connector": "BAOCAO_CONNECTOR__PORT",
    "hub_simulator": "BAOCAO_HUB_SIMULATOR__PORT",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


READY_POLL_S = 0.2


def wait_ready(
    name: str,
    process: subprocess.Popen[bytes],
    ready_url: str,
    timeout: float,
    tail: Callable[[], str],
) -> None:
    """Poll `ready_url` until it answers 200; fail at once if `process` exits, or at the
    deadline. Either failure shows the end of the process's log (`tail`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited with {process.returncode}:\n{tail()}")
        try:
            if httpx.get(ready_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(READY_POLL_S)
    raise AssertionError(f"{name} not ready within {timeout} s:\n{tail()}")


@dataclass
class Stack:
    namespace: str
    bootstrap: str
    dsn: str
    logs: Path
    now: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in SERVICES}
        self.anchor = str(time.time())

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
        env |= {
            "BAOCAO_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BAOCAO_KAFKA__NAMESPACE": self.namespace,
            "BAOCAO_KAFKA__PARTITIONS": "6",
            "BAOCAO_POSTGRES__DSN": self.dsn,
            "BAOCAO_POSTGRES__SCHEMA_PREFIX": self.namespace,
            "BAOCAO_HUB__URL": self.url("hub_simulator"),
            "BAOCAO_LOG_FORMAT": "json",
            PORT_SETTING[service]: str(self.ports[service]),
        }
        if self.now:
            env |= {"BAOCAO_NOW": self.now, "BAOCAO_NOW_ANCHOR": self.anchor}
        return env | dict(self.extra_env)

    def module(self, service: str) -> str:
        """The `services.<module>` that runs as `service`."""
        return service

    def start(self, service: str) -> None:
        with (self.logs / f"{service}.log").open("ab") as log:
            self.processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.module(service)}"],
                cwd=REPO_ROOT,
                env=self.env(service),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_all(self) -> None:
        for service in SERVICES:
            self.start(service)
        for service in SERVICES:
            self.wait_ready(service)

    def wait_ready(self, service: str, timeout: float = 90.0) -> None:
        wait_ready(
            service,
            self.processes[service],
            f"{self.url(service)}/readyz",
            timeout,
            lambda: self.tail(service),
        )

    def kill(self, service: str) -> None:
        """SIGKILL: no shutdown hook runs, as in a crash."""
        process = self.processes.pop(service)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def pause(self, service: str) -> None:
        """SIGSTOP: the process stops where it is, connections open, until `resume` or
        `kill`; what it has committed (offsets, transactions) can then be read unmoving."""
        os.killpg(self.processes[service].pid, signal.SIGSTOP)

    def resume(self, service: str) -> None:
        os.killpg(self.processes[service].pid, signal.SIGCONT)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)  # a paused process must run to stop
        for service, process in list(self.processes.items()):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            self.processes.pop(service)

    def tail(self, service: str, lines: int = 40) -> str:
        path = self.logs / f"{service}.log"
        return (
            "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            if path.exists()
            else ""
        )


class HubReader:
    """Reads what the hub simulator holds, through its API (with a token) and admin log."""

    def __init__(
        self, url: str, client_id: str = "baocao-tb", secret: str = "local-development-secret"
    ):
        self._http = httpx.Client(base_url=url, timeout=10)
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
        }

    def aggregate(self, regime: str, period: str, unit: str) -> httpx.Response:
        token = self._http.post("/oauth/token", data=self._form).json()["access_token"]
        return self._http.get(
            f"/api/v1/aggregates/{regime}/{period}/{unit}",
            headers={"Authorization": f"Bearer {token}"},
        )

    def received(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = self._http.get(
            "/admin/received", params={"limit": 10000}
        ).json()
        return entries

    def close(self) -> None:
        self._http.close()
