"""A real Prometheus (Debian's `prometheus` binary) for one test: its own port, data folder
and scrape configuration pointing at a running stack, with the rules of `deploy/`.

It scrapes and evaluates every second so that a test sees its traffic within seconds; the
scrape jobs are named after the services, as every deployment of baocao names them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.system.stack import free_port, wait_ready

READY_TIMEOUT_S = 60.0


def scrape_config(
    targets: Mapping[str, str], rule_files: Sequence[Path], interval: str = "1s"
) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }


class PrometheusServer:
    def __init__(
        self, folder: Path, targets: Mapping[str, str], rule_files: Sequence[Path]
    ) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise AssertionError("prometheus is not installed (Debian: apt-get install prometheus)")
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(scrape_config(targets, rule_files)))
        self.log = folder / "prometheus.log"
        self._command = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
        ]
        self._process: subprocess.Popen[bytes] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=10)

    def start(self) -> None:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                self._command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_ready("prometheus", self._process, f"{self.url}/-/ready", READY_TIMEOUT_S, self.tail)

    def stop(self) -> None:
        self._http.close()
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a query Prometheus refuses fails the test."""
        answer = self._http.get("/api/v1/query", params={"query": expr})
        body = answer.json()
        assert body.get("status") == "success", (expr, body)
        data = body["data"]
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """The query's samples keyed by the given labels' values."""
        return {
            tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
            for sample in self.query(expr)
        }

    def rules(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self._http.get("/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
