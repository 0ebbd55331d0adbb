"""Where the local servers keep their state: one git-ignored folder, `.local/` by default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

LOCAL_DIR_VARIABLE = "BAOCAO_LOCAL_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layout:
    """The files and folders of the local run, all under `local` except the repo's configs."""

    repo: Path
    local: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str], repo: Path = REPO_ROOT) -> Layout:
        configured = environ.get(LOCAL_DIR_VARIABLE)
        local = Path(configured).expanduser() if configured else repo / ".local"
        return cls(repo=repo, local=local.absolute())

    @property
    def maven_repository(self) -> Path:
        return self.local / "maven"

    @property
    def kafka(self) -> Path:
        return self.local / "kafka"

    @property
    def kafka_lib(self) -> Path:
        return self.kafka / "lib"

    @property
    def kafka_data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_properties(self) -> Path:
        return self.kafka / "server.properties"

    @property
    def kafka_pom(self) -> Path:
        return self.kafka / "pom.xml"

    @property
    def kafka_log4j(self) -> Path:
        return self.repo / "deploy" / "local" / "log4j2.yaml"

    @property
    def cluster(self) -> Path:
        """The three-node cluster's state (`devstack cluster`)."""
        return self.local / "cluster"

    @property
    def postgres(self) -> Path:
        return self.local / "postgres"

    @property
    def postgres_data(self) -> Path:
        return self.postgres / "data"

    @property
    def postgres_socket(self) -> Path:
        return self.postgres / "socket"

    @property
    def prometheus_data(self) -> Path:
        return self.local / "prometheus" / "data"

    @property
    def prometheus_config(self) -> Path:
        return self.repo / "deploy" / "prometheus" / "prometheus.local.yml"

    @property
    def lock(self) -> Path:
        return self.local / "run" / "servers.lock"

    def log(self, server: str) -> Path:
        return self.local / "logs" / f"{server}.log"

    def pid_file(self, server: str) -> Path:
        return self.local / "run" / f"{server}.pid"
