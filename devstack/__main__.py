"""Command line: `python -m devstack start|stop [kafka|postgres|prometheus|all]`, `status`,
`fetch-kafka`, `env`, `run [--no-traffic]`, `cluster start|stop|status|kill NODE`,
`secure-kafka start [--user NAME=PASSWORD ...]|stop|status`. This module is the composition
root: settings from the environment are read once here and passed to each server.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import sys
import time
from collections.abc import Mapping, Sequence

from devstack import DevstackError
from devstack.cluster import KafkaCluster
from devstack.kafka import BOOTSTRAP_VARIABLE, KAFKA_VERSION, Kafka, KafkaAddress, fetch
from devstack.paths import Layout
from devstack.postgres import DSN_VARIABLE, Dsn, Postgres
from devstack.processes import Outcome, Server, exclusive
from devstack.prometheus import INSTALL_HINT, Prometheus
from devstack.secure_kafka import ADMIN_USER, SecureKafka, SecureKafkaSpec

# Start order; stop goes in reverse.
SERVER_NAMES = ("postgres", "kafka", "prometheus")


def build_servers(layout: Layout, environ: Mapping[str, str]) -> dict[str, Server]:
    return {
        "postgres": Postgres(layout, Dsn.from_env(environ)),
        "kafka": Kafka(layout, KafkaAddress.from_env(environ)),
        "prometheus": Prometheus(layout, environ),
    }


def chosen(targets: Sequence[str]) -> list[str]:
    if not targets or "all" in targets:
        return list(SERVER_NAMES)
    return [name for name in SERVER_NAMES if name in targets]


def start(servers: Mapping[str, Server], names: Sequence[str]) -> bool:
    succeeded = True
    for name in names:
        server = servers[name]
        began = time.monotonic()
        try:
            outcome = server.start()
        except DevstackError as error:
            print(f"{name}: error: {error}", file=sys.stderr, flush=True)
            succeeded = False
            continue
        if outcome is Outcome.STARTED:
            print(f"{name} {server.address} (started in {time.monotonic() - began:.1f} s)")
        elif outcome is Outcome.ALREADY_RUNNING:
            print(f"{name} already running (pid {server.status().pid}) {server.address}")
        else:
            print(f"{name} {INSTALL_HINT}")
    return succeeded


def stop(servers: Mapping[str, Server], names: Sequence[str]) -> bool:
    succeeded = True
    for name in reversed(names):
        try:
            was_running = servers[name].stop()
        except DevstackError as error:
            print(f"{name}: error: {error}", file=sys.stderr, flush=True)
            succeeded = False
            continue
        print(f"{name} {'stopped' if was_running else 'was not running'}")
    return succeeded


def env_lines(environ: Mapping[str, str]) -> list[str]:
    kafka = KafkaAddress.from_env(environ)
    dsn = Dsn.from_env(environ)
    return [
        f"export {BOOTSTRAP_VARIABLE}={shlex.quote(str(kafka))}",
        f"export {DSN_VARIABLE}={shlex.quote(dsn.text)}",
    ]


def cluster_command(layout: Layout, action: str, node: int | None) -> bool:
    """The three-node KRaft cluster on loopback (devstack/cluster.py)."""
    cluster = KafkaCluster(layout, layout.cluster)
    if action == "status":
        for status in cluster.statuses():
            print(status.line())
        return True
    if action == "kill":
        if node is None:
            raise DevstackError("cluster kill needs the node to kill (1, 2 or 3)")
        killed = cluster.kill(node)
        print(f"node {node} {'killed (SIGKILL)' if killed else 'was not running'}")
        return True
    with exclusive(layout.lock):
        if action == "start":
            began = time.monotonic()
            outcome = cluster.start([node] if node is not None else None)
            elapsed = f"in {time.monotonic() - began:.1f} s"
            state = f"started {elapsed}" if outcome is Outcome.STARTED else "already running"
            print(f"cluster {cluster.address} {state}")
            print(f"export BAOCAO_KAFKA__BOOTSTRAP_SERVERS={cluster.address}")
        else:
            stopped = cluster.stop()
            print(f"cluster {'stopped' if stopped else 'was not running'}")
    return True


def secure_kafka_command(layout: Layout, action: str, users: Sequence[str]) -> bool:
    """The SASL/SCRAM broker with ACLs on 127.0.0.1:29092 (devstack/secure_kafka.py). Its
    admin password is made at the first start and kept, readable by this user only, in
    `<local>/secure-kafka/admin.password`; users are added when the storage is formatted."""
    state = layout.local / "secure-kafka"
    password_file = state / "admin.password"
    if not password_file.exists():
        state.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(secrets.token_urlsafe(18))
    pairs = dict(user.split("=", 1) for user in users)
    spec = SecureKafkaSpec(password_file.read_text().strip(), pairs)
    broker = SecureKafka(layout, state, spec)
    if action == "status":
        print(broker.status().line())
        return True
    with exclusive(layout.lock):
        if action == "stop":
            print(f"secure-kafka {'stopped' if broker.stop() else 'was not running'}")
            return True
        outcome = broker.start()
    print(f"secure-kafka {broker.address} {outcome.value}; SASL/SCRAM-SHA-512, ACLs on")
    print(f"export BAOCAO_KAFKA__BOOTSTRAP_SERVERS={broker.address}")
    print("export BAOCAO_KAFKA__SECURITY_PROTOCOL=SASL_PLAINTEXT")
    print(f"export BAOCAO_KAFKA__SASL_USERNAME={ADMIN_USER}")
    print(f"export BAOCAO_KAFKA__SASL_PASSWORD=$(cat {shlex.quote(str(password_file))})")
    return True


def user_password(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError("expected NAME=PASSWORD")
    return text


def target(text: str) -> str:
    if text not in (*SERVER_NAMES, "all"):
        raise argparse.ArgumentTypeError(f"unknown server {text!r}")
    return text


def positive_rate(text: str) -> float:
    rate = float(text)
    if not rate > 0:
        raise argparse.ArgumentTypeError("the rate must be above 0")
    return rate


def parser() -> argparse.ArgumentParser:
    targets = "|".join((*SERVER_NAMES, "all"))
    root = argparse.ArgumentParser(
        prog="scripts/servers",
        description="Start, stop and report on the local Kafka, PostgreSQL and Prometheus.",
    )
    commands = root.add_subparsers(dest="command", required=True)
    for name, verb in (("start", "start"), ("stop", "stop")):
        sub = commands.add_parser(name, help=f"{verb} servers (default: all)")
        # Validated by `type`, not `choices`: argparse rejects an empty `*` list with choices.
        sub.add_argument("targets", nargs="*", type=target, metavar="{" + targets + "}")
    commands.add_parser("status", help="one line per server: state, pid, address")
    commands.add_parser("fetch-kafka", help=f"only download Kafka {KAFKA_VERSION}'s jars")
    commands.add_parser("env", help="print `export` lines for the servers' addresses")
    cluster = commands.add_parser(
        "cluster",
        prog="scripts/cluster",
        help="a three-node KRaft cluster on 127.0.0.1:19092-19094 (state in <local>/cluster)",
    )
    cluster.add_argument("action", choices=("start", "stop", "status", "kill"))
    cluster.add_argument(
        "node",
        nargs="?",
        type=int,
        help="start: only this node (restart after a kill); kill: the node to SIGKILL",
    )
    secure = commands.add_parser(
        "secure-kafka",
        help="a SASL/SCRAM broker with ACLs on 127.0.0.1:29092 (state in <local>/secure-kafka)",
    )
    secure.add_argument("action", choices=("start", "stop", "status"))
    secure.add_argument(
        "--user",
        action="append",
        default=[],
        type=user_password,
        help="NAME=PASSWORD of a SCRAM user, created when the storage is first formatted",
    )
    running = commands.add_parser(
        "run",
        prog="scripts/run",
        help="the whole system: servers, services, hub simulator, sample traffic, live summary",
    )
    running.add_argument(
        "--no-traffic",
        action="store_true",
        help="no sample-report generator: another client is the only sender",
    )
    running.add_argument(
        "--rate", type=positive_rate, default=None, help="sample reports per second (default 5)"
    )
    return root


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    arguments = parser().parse_args(argv)
    try:
        if arguments.command == "env":
            print("\n".join(env_lines(environ)))
            return 0
        layout = Layout.from_env(environ)
        if arguments.command == "fetch-kafka":
            with exclusive(layout.lock):
                downloaded = fetch(layout)
            state = "downloaded to" if downloaded else "already in"
            print(f"kafka {KAFKA_VERSION} jars {state} {layout.kafka_lib}")
            return 0
        if arguments.command == "cluster":
            return 0 if cluster_command(layout, arguments.action, arguments.node) else 1
        if arguments.command == "secure-kafka":
            return 0 if secure_kafka_command(layout, arguments.action, arguments.user) else 1
        servers = build_servers(layout, environ)
        if arguments.command == "run":
            # Imported here: only `run` needs the HTTP and metrics clients.
            from devstack.supervisor import run

            return run(
                layout, servers, environ, traffic=not arguments.no_traffic, rate=arguments.rate
            )
        if arguments.command == "status":
            for name in SERVER_NAMES:
                print(servers[name].status().line())
            return 0
        names = chosen(arguments.targets)
        with exclusive(layout.lock):
            if arguments.command == "start":
                succeeded = start(servers, names)
            else:
                succeeded = stop(servers, names)
    except DevstackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0 if succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
