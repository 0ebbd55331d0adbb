"""Prometheus scraping the local services, where the Debian package `prometheus` is installed.

It is optional: without the binary, `start` says so and succeeds, since nothing in the
system or its tests depends on it.
"""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from devstack import DevstackError, NotReadyError
from devstack.paths import Layout
from devstack.processes import (
    LogCursor,
    Outcome,
    PidFile,
    Status,
    port_open,
    spawn,
    terminate_group,
    wait_for,
)

CONFIG_VARIABLE = "BAOCAO_PROMETHEUS_CONFIG"
HOST = "127.0.0.1"
PORT = 9090
READY_TIMEOUT_S = 60.0
INSTALL_HINT = "not installed (Debian: apt-get install prometheus); skipped"


def command(binary: str, config: Path, data: Path) -> list[str]:
    return [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address={HOST}:{PORT}",
        # Lets `curl -X POST :9090/-/reload` pick up an edited scrape config.
        "--web.enable-lifecycle",
    ]


class Prometheus:
    name = "prometheus"
    address = f"http://{HOST}:{PORT}"

    def __init__(self, layout: Layout, environ: Mapping[str, str]) -> None:
        self.layout = layout
        configured = environ.get(CONFIG_VARIABLE)
        self.config = Path(configured).absolute() if configured else layout.prometheus_config
        self.pid_file = PidFile(
            layout.pid_file(self.name), marker=f"--storage.tsdb.path={layout.prometheus_data}"
        )

    def start(self) -> Outcome:
        if self.pid_file.process() is not None:
            return Outcome.ALREADY_RUNNING
        binary = shutil.which("prometheus")
        if binary is None:
            return Outcome.SKIPPED
        if not self.config.is_file():
            raise DevstackError(f"prometheus config {self.config} does not exist")
        if port_open(HOST, PORT):
            raise DevstackError(f"{HOST}:{PORT} is already in use by a process not started here")
        self.layout.prometheus_data.mkdir(parents=True, exist_ok=True)
        log = self.layout.log(self.name)
        cursor = LogCursor(log)
        process = spawn(
            command(binary, self.config, self.layout.prometheus_data),
            log,
            cwd=self.layout.prometheus_data.parent,
        )
        self.pid_file.write(process.pid)
        try:
            self._wait_ready(process, cursor)
        except BaseException:
            terminate_group(process.pid)
            self.pid_file.remove()
            raise
        return Outcome.STARTED

    def _wait_ready(self, process: subprocess.Popen[bytes], cursor: LogCursor) -> None:
        def ready() -> bool:
            if process.poll() is not None:
                raise NotReadyError(
                    f"prometheus exited with code {process.returncode}\n{cursor.report()}"
                )
            # S310: the URL is built from constants above, always http on loopback.
            url = f"{self.address}/-/ready"
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    return response.status == 200  # type: ignore[no-any-return]
            except (urllib.error.URLError, OSError):
                return False

        if not wait_for(ready, READY_TIMEOUT_S):
            raise NotReadyError(
                f"prometheus was not ready within {READY_TIMEOUT_S:.0f} s\n{cursor.report()}"
            )

    def stop(self) -> bool:
        process = self.pid_file.process()
        if process is None:
            return False
        terminate_group(process.pid)
        self.pid_file.remove()
        return True

    def status(self) -> Status:
        process = self.pid_file.process()
        if process is not None:
            return Status(self.name, "running", self.address, process.pid)
        if shutil.which("prometheus") is None:
            return Status(self.name, "not installed", self.address)
        return Status(self.name, "stopped", self.address)
