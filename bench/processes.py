"""The system under test as processes: started, watched for CPU and memory, stopped.

Each deployment has its own namespace (topics, consumer groups, schemas) on the running
Kafka and PostgreSQL, and free ports, so it never meets another run's state. Every process
reads the same `BAOCAO_NOW` and `BAOCAO_NOW_ANCHOR`, so their clocks agree, and the bench
can turn a service's time back into real time (`real_time`). Logs go to one file per
process under the run's folder.

Memory is the kernel's high-water mark of each process (`VmHWM`), reset at the start of a
phase (`/proc/<pid>/clear_refs`), so a phase's figure is the largest resident set the
process had during it; CPU is the user and system time the process spent in the phase.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx

# psutil ships no types and the project does not pin types-psutil.
import psutil  # type: ignore[import-untyped]

from shared.settings import REPO_ROOT

SERVICES = ("submission", "validation", "aggregation", "connector", "hub_simulator")
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class Usage:
    """What one process used during a phase."""

    cpu_s: float
    wall_s: float
    peak_rss_bytes: int
    jit_s: float = 0.0  # of cpu_s, a JVM's JIT compiler threads (the broker just started)

    @property
    def cpu_share(self) -> float:
        """CPU time over wall time: 1.0 is one core busy all along."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0


@dataclass(frozen=True)
class MachineUsage:
    """The whole machine's CPU over a phase, in cores: busy with anything (ours or not),
    idle, and stolen (taken by the hypervisor for other guests on a virtual machine).
    Idle cores flat out mean the pipeline waited, not that the machine was full."""

    busy: float
    idle: float
    stolen: float


def _machine_times() -> tuple[float, float, float]:
    """(all, idle, stolen) CPU seconds of every core since boot."""
    times = psutil.cpu_times()
    # Linux counts a guest's time inside user time already.
    guests = getattr(times, "guest", 0.0) + getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - guests, idle, getattr(times, "steal", 0.0)


def machine_usage(
    before: tuple[float, float, float], after: tuple[float, float, float], wall_s: float
) -> MachineUsage:
    if wall_s <= 0:
        return MachineUsage(0.0, 0.0, 0.0)
    spent, idle, stolen = (b - a for a, b in zip(before, after, strict=True))
    return MachineUsage(
        busy=(spent - idle - stolen) / wall_s, idle=idle / wall_s, stolen=stolen / wall_s
    )


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False  # not allowed here: the peak then runs from the process's start
    return True


def listening(port: int) -> int | None:
    """The process listening on a local TCP port (the Kafka broker, PostgreSQL)."""
    for connection in psutil.net_connections(kind="tcp"):
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
            return int(connection.pid) if connection.pid else None
    return None


# HotSpot's JIT compiler threads ("C1 CompilerThread0", cut to 15 characters in comm).
_COMPILER_THREAD = ("C1 CompilerThre", "C2 CompilerThre")


def jit_cpu_s(pid: int) -> float:
    """CPU seconds a Java process's JIT compiler threads have taken so far (0 when it is no
    JVM or cannot be read): what a broker just started spends compiling its own code."""
    total = 0.0
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            if (task / "comm").read_text().strip().startswith(_COMPILER_THREAD):
                fields = (task / "stat").read_text().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except OSError:
        pass  # a thread that ended while read, or no such process: count what was read
    return total


def _cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


class Meter:
    """CPU and peak memory of a set of processes over one phase; CPU only of the servers
    (a server with its children: PostgreSQL's backends that lived through the phase)."""

    def __init__(self, pids: Mapping[str, int], servers: Mapping[str, int] | None = None) -> None:
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._cpu = {name: _cpu_of(p) for name, p in self._processes.items()}
        resets = [_reset_peak(p.pid) for p in self._processes.values()]  # every one
        self.peak_reset = all(resets)
        self._servers = {name: psutil.Process(pid) for name, pid in (servers or {}).items()}
        self._server_cpu = {name: self._family_cpu(p) for name, p in self._servers.items()}
        self._server_jit = {name: jit_cpu_s(p.pid) for name, p in self._servers.items()}
        self._machine = _machine_times()
        self._started = time.monotonic()

    @staticmethod
    def _family_cpu(process: psutil.Process) -> dict[int, float]:
        found: dict[int, float] = {}
        for member in [process, *process.children(recursive=True)]:
            try:
                found[member.pid] = _cpu_of(member)
            except psutil.NoSuchProcess:
                continue
        return found

    def read(self) -> dict[str, Usage]:
        wall = time.monotonic() - self._started
        usage = {
            name: Usage(_cpu_of(p) - self._cpu[name], wall, _peak_rss(p.pid))
            for name, p in self._processes.items()
        }
        for name, server in self._servers.items():
            before, after = self._server_cpu[name], self._family_cpu(server)
            spent = sum(after[pid] - before[pid] for pid in after.keys() & before.keys())
            jit = jit_cpu_s(server.pid) - self._server_jit[name]
            usage[name] = Usage(spent, wall, 0, jit)
        return usage

    def machine(self) -> MachineUsage:
        """The whole machine's CPU since the meter started."""
        return machine_usage(self._machine, _machine_times(), time.monotonic() - self._started)


@dataclass
class Deployment:
    """The four services and the hub simulator, on one namespace."""

    namespace: str
    bootstrap: str
    dsn: str
    logs: Path
    now: datetime
    partitions: int = 12
    group_namespace: str | None = None
    # Settings to try (`--set`); those that place the run (namespace, ports, clock) are its own.
    extra_env: Mapping[str, str] = field(default_factory=dict)
    anchor: float = field(default_factory=time.time)
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ports = {name: free_port() for name in SERVICES}

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def topic(self, name: str) -> str:
        return f"{self.namespace}{name}"

    def group(self, service: str) -> str:
        prefix = self.namespace if self.group_namespace is None else self.group_namespace
        return f"{prefix}baocao.{service}"

    def schema(self, service: str) -> str:
        return f"{self.namespace}{service}"

    def real_time(self, service_time: datetime) -> float:
        """The epoch second at which a service's clock read `service_time`."""
        return (service_time - self.now).total_seconds() + self.anchor

    def env(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BAOCAO_")}
        env |= self.extra_env
        env |= {
            "BAOCAO_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "BAOCAO_KAFKA__NAMESPACE": self.namespace,
            "BAOCAO_KAFKA__PARTITIONS": str(self.partitions),
            "BAOCAO_POSTGRES__DSN": self.dsn,
            "BAOCAO_POSTGRES__SCHEMA_PREFIX": self.namespace,
            "BAOCAO_HUB__URL": self.url("hub_simulator"),
            "BAOCAO_LOG_FORMAT": "json",
            "BAOCAO_NOW": self.now.isoformat(),
            "BAOCAO_NOW_ANCHOR": repr(self.anchor),
            f"BAOCAO_{service.upper()}__PORT": str(self.ports[service]),
        }
        if self.group_namespace is not None:
            env["BAOCAO_KAFKA__GROUP_NAMESPACE"] = self.group_namespace
        return env

    def start(self, services: Sequence[str] = SERVICES) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for service in services:
            with (self.logs / f"{service}.log").open("ab") as log:
                self.processes[service] = subprocess.Popen(
                    [sys.executable, "-m", f"services.{service}"],
                    cwd=REPO_ROOT,
                    env=self.env(service),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        for service in services:
            self.wait_ready(service)

    def wait_ready(self, service: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            process = self.processes[service]
            if process.poll() is not None:
                raise RuntimeError(f"{service} exited with {process.returncode}: see {self.logs}")
            try:
                if httpx.get(f"{self.url(service)}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{service} not ready within {READY_TIMEOUT_S} s: see {self.logs}")

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.processes.items()}

    def stop(self) -> None:
        """SIGTERM to every process group, then SIGKILL to any still running after a grace."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()
