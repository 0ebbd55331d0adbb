"""A single-node Apache Kafka (KRaft) that authenticates every client with SASL/SCRAM-SHA-512
and authorizes every request with ACLs: production's security on one machine, beside the
plaintext local broker, for the tests of sender authentication and for trying it by hand.

SCRAM users are written into the metadata when the storage is formatted (the storage
tool's `--add-scram`, KIP-900), so the broker authenticates them from its first start;
`admin` is the super user (the broker itself, and whoever provisions topics and ACLs).
Every other principal may do nothing until ACLs allow it (`allow.everyone.if.no.acl.found`
is false, as it must be in production). The controller listener is SASL/PLAIN with the
admin's password only: SCRAM credentials live in the metadata the controller serves, so
a controller cannot use them to authenticate its own listener.

Given a TLS port, the node also listens there with SASL_SSL (SCRAM over TLS, as
production's brokers do), with a certificate for the loopback address from a CA made at
each start (`devstack.tls`); clients trust `tls/ca.pem` in the state folder.

    python -m devstack secure-kafka start [--user NAME=PASSWORD ...]|stop|status
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack import DevstackError, NotReadyError
from devstack.kafka import (
    answers_metadata,
    fetch,
    java_command,
    new_cluster_id,
    run_storage_tool,
    wait_started,
)
from devstack.paths import Layout
from devstack.processes import (
    LogCursor,
    Outcome,
    PidFile,
    Status,
    port_open,
    spawn,
    terminate_group,
)
from devstack.tls import TlsFiles, issue

HOST = "127.0.0.1"
BROKER_PORT = 29092
CONTROLLER_PORT = 29093
ADMIN_USER = "admin"
MECHANISM = "SCRAM-SHA-512"
HEAP_OPTIONS = ("-Xms128m", "-Xmx512m")
READY_TIMEOUT_S = 90.0
MAIN_CLASS = "kafka.Kafka"


@dataclass(frozen=True)
class SecureKafkaSpec:
    """Where the node listens and who may log in (name → password, the admin included)."""

    admin_password: str
    users: Mapping[str, str]
    broker_port: int = BROKER_PORT
    controller_port: int = CONTROLLER_PORT
    tls_port: int | None = None  # a SASL_SSL listener besides the SASL_PLAINTEXT one

    def __post_init__(self) -> None:
        ports = [p for p in (self.broker_port, self.controller_port, self.tls_port) if p]
        if len(set(ports)) < len(ports):
            raise DevstackError("the broker, the controller and TLS need different ports")
        for name, password in {ADMIN_USER: self.admin_password, **self.users}.items():
            # The storage tool reads `name=...,password=...` lists: these characters would
            # split them, and quotes would end the JAAS strings.
            if not name or not password or any(c in name + password for c in ',=[]"\\ '):
                raise DevstackError(f"user {name!r}: names and passwords need plain characters")

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.broker_port}"

    @property
    def controller(self) -> str:
        return f"{HOST}:{self.controller_port}"

    @property
    def tls_bootstrap(self) -> str | None:
        return f"{HOST}:{self.tls_port}" if self.tls_port is not None else None

    def all_users(self) -> dict[str, str]:
        return {ADMIN_USER: self.admin_password, **self.users}


def _jaas(module: str, user: str, password: str, extra: str = "") -> str:
    return f'{module} required username="{user}" password="{password}"{extra};'


def _tls_listener(spec: SecureKafkaSpec, tls: TlsFiles | None) -> dict[str, str]:
    """The SASL_SSL listener's settings (none without a TLS port)."""
    if spec.tls_bootstrap is None:
        return {}
    if tls is None:
        raise DevstackError("a TLS listener needs its certificate files")
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return {
        # The broker only checks SCRAM logins here: it needs no credentials of its own.
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{scram} required;",
        "listener.name.sasl_ssl.ssl.keystore.type": "PEM",
        "listener.name.sasl_ssl.ssl.keystore.location": str(tls.keystore),
    }


def render_properties(spec: SecureKafkaSpec, data: Path, tls: TlsFiles | None = None) -> str:
    """server.properties: SASL/SCRAM on the client listeners (one over TLS given a TLS
    port), ACLs on every request."""
    plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
    scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
    admin = spec.admin_password
    client = [f"SASL_PLAINTEXT://{spec.bootstrap}"]
    protocols = ["SASL_PLAINTEXT:SASL_PLAINTEXT", "CONTROLLER:SASL_PLAINTEXT"]
    if spec.tls_bootstrap is not None:
        client.append(f"SASL_SSL://{spec.tls_bootstrap}")
        protocols.append("SASL_SSL:SASL_SSL")
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": spec.controller,
        "listeners": ",".join([*client, f"CONTROLLER://{spec.controller}"]),
        "advertised.listeners": ",".join(client),
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(protocols),
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": _jaas(
            scram, ADMIN_USER, admin
        ),
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": _jaas(
            plain, ADMIN_USER, admin, f' user_{ADMIN_USER}="{admin}"'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN_USER}",
        "allow.everyone.if.no.acl.found": "false",
        "log.dirs": str(data),
        "auto.create.topics.enable": "false",
        "num.partitions": "3",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.retention.hours": "24",
        **_tls_listener(spec, tls),
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    return "\n".join(["# generated by devstack/secure_kafka.py at each start", *lines]) + "\n"


def scram_arguments(spec: SecureKafkaSpec) -> list[str]:
    """`--add-scram` arguments of the storage tool, one per user."""
    arguments: list[str] = []
    for name, password in spec.all_users().items():
        arguments += ["--add-scram", f"{MECHANISM}=[name={name},password={password}]"]
    return arguments


class SecureKafka:
    """Start and stop one SASL/SCRAM broker whose state lives in `state`."""

    name = "secure-kafka"

    def __init__(self, layout: Layout, state: Path, spec: SecureKafkaSpec) -> None:
        self.layout = layout
        self.state = state
        self.spec = spec
        self._child: subprocess.Popen[bytes] | None = None
        self.tls: TlsFiles | None = None

    @property
    def address(self) -> str:
        return self.spec.bootstrap

    @property
    def properties(self) -> Path:
        return self.state / "server.properties"

    @property
    def log(self) -> Path:
        return self.state / "logs" / "secure-kafka.log"

    @property
    def pid_file(self) -> PidFile:
        return PidFile(self.state / "run" / "secure-kafka.pid", str(self.properties))

    def start(self) -> Outcome:
        if self.pid_file.process() is not None:
            return Outcome.ALREADY_RUNNING
        ports = (self.spec.broker_port, self.spec.controller_port, self.spec.tls_port)
        for port in [p for p in ports if p is not None]:
            if port_open(HOST, port):
                raise DevstackError(f"{HOST}:{port} is in use by a process not started here")
        fetch(self.layout)
        data = self.state / "data"
        data.mkdir(parents=True, exist_ok=True)
        if self.spec.tls_port is not None:
            self.tls = issue(self.state / "tls", HOST)
        self.properties.write_text(render_properties(self.spec, data, self.tls))
        self.properties.chmod(0o600)  # it holds the admin's password
        if not (data / "meta.properties").exists():
            cluster_id = new_cluster_id(self.layout)
            run_storage_tool(
                self.layout,
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.properties),
                "--standalone",
                *scram_arguments(self.spec),
            )
        cursor = LogCursor(self.log)
        command = java_command(self.layout, MAIN_CLASS, str(self.properties), heap=HEAP_OPTIONS)
        process = spawn(command, self.log, cwd=self.state)
        self._child = process
        self.pid_file.write(process.pid)
        try:
            self._wait_ready(process, cursor)
        except BaseException:
            self.stop()
            raise
        return Outcome.STARTED

    def _wait_ready(self, process: subprocess.Popen[bytes], cursor: LogCursor) -> None:
        began = time.monotonic()
        wait_started("secure kafka", process, cursor, HOST, self.spec.broker_port, READY_TIMEOUT_S)
        remaining = READY_TIMEOUT_S - (time.monotonic() - began)
        if not asyncio.run(self._admin_answers(max(remaining, 10.0))):
            raise NotReadyError(f"secure kafka refuses its admin's login\n{cursor.report()}")

    async def _admin_answers(self, timeout_s: float) -> bool:
        """Whether the admin can log in and read the metadata within `timeout_s`."""
        admin = {
            "bootstrap_servers": self.address,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": ADMIN_USER,
            "sasl_plain_password": self.spec.admin_password,
        }
        return await answers_metadata(admin, timeout_s)

    def stop(self) -> bool:
        process = self.pid_file.process()
        stopped = False
        if process is not None:
            terminate_group(process.pid)
            stopped = True
        self.pid_file.remove()
        if self._child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._child.wait(timeout=10)
            self._child = None
        return stopped

    def status(self) -> Status:
        process = self.pid_file.process()
        if process is None:
            return Status(self.name, "stopped", self.address)
        return Status(self.name, "running", self.address, process.pid)
