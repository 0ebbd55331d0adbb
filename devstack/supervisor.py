"""`python -m devstack run [--no-traffic]`: the whole system on one machine, in one terminal.

Starts the servers (PostgreSQL, Kafka, Prometheus where installed), the four services and
the hub simulator as child processes, waits until every `/readyz` answers, starts the
sample-traffic generator, then prints a live summary every 2 s until Ctrl-C or SIGTERM.

Every child runs in its own process group, with its output in `<local>/logs/<name>.log`:
a Ctrl-C in the terminal reaches only this supervisor, which stops the children in order
(traffic first, so nothing is sent to services that are stopping; then the services;
then only the servers this run started). On Linux each child also gets SIGTERM if the
supervisor itself dies, so no path leaves an orphan behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType

import httpx

from devstack import DevstackError
from devstack.output import readerless_output
from devstack.paths import Layout
from devstack.processes import LogCursor, Outcome, Server, exclusive, port_open
from devstack.summary import Endpoint, Summary

READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 30.0
KILL_GRACE_S = 5.0
POLL_S = 0.25
SUMMARY_EVERY_S = 2.0
TAIL_LINES = 30
NOW_VARIABLE = "BAOCAO_NOW"
ANCHOR_VARIABLE = "BAOCAO_NOW_ANCHOR"
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ServiceSpec:
    """One service process: `python -m services.<name>`, serving HTTP on `port`."""

    name: str
    default_port: int

    def port(self, environ: Mapping[str, str]) -> int:
        return int(environ.get(f"BAOCAO_{self.name.upper()}__PORT", self.default_port))


SERVICES = (
    ServiceSpec("submission", 8001),
    ServiceSpec("validation", 8002),
    ServiceSpec("aggregation", 8003),
    ServiceSpec("connector", 8004),
    ServiceSpec("hub_simulator", 8010),
)


class RunError(DevstackError):
    """The run cannot go on; the message says why (with a log's tail where there is one)."""


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A pre-exec hook: the child gets SIGTERM when the supervisor dies, even by SIGKILL."""

    def hook() -> None:
        if sys.platform == "linux":
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


@dataclass
class Child:
    """A child process in its own process group, its output appended to `log`."""

    name: str
    argv: Sequence[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    cursor: LogCursor | None = field(default=None, repr=False)

    def start(self, environ: Mapping[str, str], cwd: Path) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.cursor = LogCursor(self.log)
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(environ),
                start_new_session=True,
                # The supervisor starts no thread, so a pre-exec hook is safe here.
                preexec_fn=_die_with_parent(os.getpid()),
            )

    @property
    def exit_code(self) -> int | None:
        """None while it runs (or before it started)."""
        return None if self.process is None else self.process.poll()

    def tail(self, lines: int = TAIL_LINES) -> str:
        text = self.cursor.text() if self.cursor is not None else ""
        shown = text.splitlines()[-lines:]
        return "\n".join([f"--- last lines of {self.log} ---", *shown, "---"])

    def signal_group(self, signum: signal.Signals) -> None:
        if self.process is None:
            return
        # The group outlives its leader while any member lives: signal it even then.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def group_alive(self) -> bool:
        if self.process is None:
            return False
        self.process.poll()
        try:
            os.killpg(self.process.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


def stop_children(children: Sequence[Child], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM every group at once, wait up to `grace_s`, then SIGKILL what is left."""
    started = [child for child in children if child.process is not None]
    for child in started:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(child.group_alive() for child in started) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for child in started:
        if child.group_alive():
            print(f"{child.name} did not stop within {grace_s:.0f} s: killing it", flush=True)
            child.signal_group(signal.SIGKILL)
    deadline = time.monotonic() + KILL_GRACE_S
    while any(child.group_alive() for child in started) and time.monotonic() < deadline:
        time.sleep(POLL_S)


class StopRequest:
    """SIGINT/SIGTERM as a flag the run polls, once the servers are up."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def __call__(self, signum: int, _: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            print(f"\n{signal.Signals(signum).name}: stopping", flush=True)
        self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()


def _interrupt(signum: int, _: FrameType | None) -> None:
    # While a server starts, SIGTERM acts as Ctrl-C: the server's start cleans up after
    # itself on any exception, and the run then stops what it had started.
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def signal_handlers(handler: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def child_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: one clock anchor for the whole run when BAOCAO_NOW is set,
    so every service's shifted clock reads the same instant (shared/clock.py)."""
    env = dict(environ)
    env["PYTHONUNBUFFERED"] = "1"
    if env.get(NOW_VARIABLE):
        env[ANCHOR_VARIABLE] = f"{time.time():.6f}"
    return env


def check_now(environ: Mapping[str, str]) -> None:
    text = environ.get(NOW_VARIABLE)
    if not text:
        return
    try:
        at = datetime.fromisoformat(text)
    except ValueError as error:
        raise RunError(f"{NOW_VARIABLE}={text!r} is not an ISO datetime: {error}") from None
    if at.tzinfo is None:
        raise RunError(f"{NOW_VARIABLE}={text!r} needs a UTC offset, e.g. +07:00")


@dataclass
class Run:
    """One `devstack run`: what it started, so that it stops exactly that."""

    layout: Layout
    servers: Mapping[str, Server]
    environ: Mapping[str, str]
    traffic: bool = True
    rate: float | None = None
    started_servers: list[str] = field(default_factory=list)
    running_servers: list[str] = field(default_factory=list)
    services: list[Child] = field(default_factory=list)
    generator: Child | None = None
    stop: StopRequest = field(default_factory=StopRequest)

    @property
    def host(self) -> str:
        return self.environ.get("BAOCAO_HOST", "127.0.0.1")

    def url(self, spec: ServiceSpec, path: str) -> str:
        return f"http://{self.host}:{spec.port(self.environ)}{path}"

    # --- servers ---------------------------------------------------------------------

    def start_servers(self) -> None:
        with exclusive(self.layout.lock):
            for name, server in self.servers.items():
                began = time.monotonic()
                try:
                    outcome = server.start()
                except DevstackError as error:
                    if name == "prometheus":  # optional: nothing depends on it
                        print(f"prometheus: not started: {error}", flush=True)
                        continue
                    raise RunError(f"{name}: {error}") from error
                if outcome is Outcome.STARTED:
                    self.started_servers.append(name)
                    self.running_servers.append(name)
                    took = time.monotonic() - began
                    print(f"{name} {server.address} (started in {took:.1f} s)", flush=True)
                elif outcome is Outcome.ALREADY_RUNNING:
                    self.running_servers.append(name)
                    print(f"{name} already running {server.address} (left running)", flush=True)
                else:
                    print(f"{name} not installed: skipped", flush=True)

    def stop_servers(self) -> None:
        if not self.started_servers:
            return
        with exclusive(self.layout.lock):
            for name in reversed(self.started_servers):
                try:
                    self.servers[name].stop()
                    print(f"{name} stopped", flush=True)
                except DevstackError as error:
                    print(f"{name}: error while stopping: {error}", file=sys.stderr, flush=True)
        self.started_servers.clear()

    # --- services --------------------------------------------------------------------

    def check_ports(self) -> None:
        """A port already in use means another run (or a stray service): its /readyz would
        answer for ours, so refuse before starting anything."""
        busy = [s for s in SERVICES if port_open(self.host, s.port(self.environ))]
        if busy:
            ports = ", ".join(f"{s.name} :{s.port(self.environ)}" for s in busy)
            raise RunError(
                f"ports in use ({ports}): another run may still be going"
                ' (stop it, or `pkill -f "python -m services\\."`)'
            )

    def start_services(self, env: Mapping[str, str]) -> None:
        self.check_ports()
        for spec in SERVICES:
            child = Child(
                spec.name,
                [sys.executable, "-m", f"services.{spec.name}"],
                self.layout.log(spec.name),
            )
            self.services.append(child)
            child.start(env, self.layout.repo)
        print(f"services starting: {', '.join(s.name for s in SERVICES)}", flush=True)

    def wait_ready(self) -> None:
        """Poll every /readyz until each answers 200, a child exits, or the deadline."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        waiting = dict(zip(SERVICES, self.services, strict=True))
        with httpx.Client() as client:
            while waiting:
                for spec, child in list(waiting.items()):
                    if child.exit_code is not None:
                        raise RunError(
                            f"{child.name} exited with code {child.exit_code} while starting\n"
                            f"{child.tail()}"
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(self.url(spec, "/readyz"), timeout=2).status_code == 200:
                            del waiting[spec]
                if not waiting or self.stop.event.wait(POLL_S):
                    break
                if time.monotonic() > deadline:
                    tails = "\n".join(child.tail() for child in waiting.values())
                    names = ", ".join(child.name for child in waiting.values())
                    raise RunError(f"not ready within {READY_TIMEOUT_S:.0f} s: {names}\n{tails}")

    def start_traffic(self, env: Mapping[str, str]) -> None:
        argv = [sys.executable, "-m", "services.traffic"]
        if self.rate is not None:
            argv += ["--rate", f"{self.rate:g}"]
        self.generator = Child("traffic", argv, self.layout.log("traffic"))
        self.generator.start(env, self.layout.repo)

    def stop_all(self) -> None:
        if self.generator is not None:
            stop_children([self.generator])
            print("traffic stopped", flush=True)
        if self.services:
            stop_children(self.services)
            print("services stopped", flush=True)
        self.stop_servers()

    # --- while running ---------------------------------------------------------------

    def banner(self) -> str:
        submission, *_ = SERVICES
        hub = SERVICES[-1]
        namespace = self.environ.get("BAOCAO_KAFKA__NAMESPACE", "")
        lines = ["", "baocao is running."]
        if self.environ.get(NOW_VARIABLE):
            lines.append(f"  clock            starts at {self.environ[NOW_VARIABLE]} (BAOCAO_NOW)")
        ports = ", ".join(f"{spec.name} :{spec.port(self.environ)}" for spec in SERVICES)
        lines += [
            f"  submission API   {self.url(submission, '/docs')}"
            f"  (POST {self.url(submission, '/v1/reports')})",
            f"  services         {ports}",
            f"  metrics          each serves /metrics /healthz /readyz,"
            f" e.g. {self.url(SERVICES[2], '/metrics')}",
            f"  hub simulator    {self.url(hub, '/admin/received')}",
        ]
        if "prometheus" in self.running_servers:
            lines.append(f"  prometheus       {self.servers['prometheus'].address}")
        lines += [
            f"  logs             {self.layout.local / 'logs'}",
            f"  kafka            {self.servers['kafka'].address}"
            f"  (send reports to {namespace}reports.inbound.v1)",
            f"  postgresql       {self.servers['postgres'].address}",
        ]
        if self.generator is not None:
            rate = f"{self.rate:g}" if self.rate is not None else "5"
            lines.append(f"  traffic          {rate} reports/s, log {self.generator.log}")
        else:
            lines.append("  traffic          off (--no-traffic): yours are the only reports")
        lines += ["Ctrl-C stops everything.", ""]
        return "\n".join(lines)

    def died(self) -> Child | None:
        for child in self.services:
            if child.exit_code is not None:
                return child
        if self.generator is not None and self.generator.exit_code not in (None, 0):
            return self.generator
        return None

    def watch(self) -> int:
        endpoints = [Endpoint(spec.name, self.url(spec, "/metrics")) for spec in SERVICES]
        traffic_done = False
        with httpx.Client() as client:
            summary = Summary(client, endpoints)
            while not self.stop.event.wait(SUMMARY_EVERY_S):
                dead = self.died()
                if dead is not None:
                    print(
                        f"{dead.name} exited with code {dead.exit_code}: stopping everything\n"
                        f"{dead.tail()}",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
                if self.generator is not None and self.generator.exit_code == 0:
                    if not traffic_done:
                        print("traffic generator finished", flush=True)
                    traffic_done = True
                print(summary.line(), flush=True)
        return 0

    def __call__(self) -> int:
        with readerless_output():
            return self._run()

    def _run(self) -> int:
        try:
            check_now(self.environ)
            self.check_ports()
            env = child_environment(self.environ)
            with signal_handlers(_interrupt):
                self.start_servers()
            with signal_handlers(self.stop):
                self.start_services(env)
                self.wait_ready()
                if self.stop.requested:
                    return 0
                print("services ready", flush=True)
                if self.traffic:
                    self.start_traffic(env)
                print(self.banner(), flush=True)
                return self.watch()
        except RunError as error:
            print(f"error: {error}", file=sys.stderr, flush=True)
            return 1
        except KeyboardInterrupt:
            print("\ninterrupted: stopping", flush=True)
            return 0
        finally:
            # Ctrl-C while stopping must not leave half of it running.
            with signal_handlers(self.stop):
                self.stop_all()


def run(
    layout: Layout,
    servers: Mapping[str, Server],
    environ: Mapping[str, str],
    *,
    traffic: bool = True,
    rate: float | None = None,
) -> int:
    """Run everything until SIGINT/SIGTERM (exit 0) or a failure (exit 1)."""
    return Run(layout, servers, environ, traffic=traffic, rate=rate)()
