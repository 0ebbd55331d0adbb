"""deploy/compose/compose.yaml read as Docker Compose and the apache/kafka image read it,
without either: `${VAR:-default}` interpolated with its defaults, the names a service refers
to, and each broker's server.properties rendered from its environment.

The image renders its `KAFKA_*` environment into server.properties (its docker/README:
"replace `.` with `_`, `_` with `__`, `-` with `___`, prefix with `KAFKA_`", the reverse
done by its `utility render-properties`), after filling in defaults for the KRaft settings
left unset (`configureDefaults`), and formats the storage with `CLUSTER_ID`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from shared.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "deploy" / "compose" / "compose.yaml"
BROKERS = ("kafka-1", "kafka-2", "kafka-3")

# The image's configureDefaults: what a node gets for each of these it leaves unset.
IMAGE_DEFAULTS = {
    "CLUSTER_ID": "5L6g3nShT-eMCtK--X86sw",
    "KAFKA_NODE_ID": "1",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": (
        "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,PLAINTEXT_HOST:PLAINTEXT"
    ),
    "KAFKA_LISTENERS": (
        "PLAINTEXT://localhost:29092,CONTROLLER://localhost:29093,PLAINTEXT_HOST://0.0.0.0:9092"
    ),
    "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:29092,PLAINTEXT_HOST://localhost:9092",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:29093",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_LOG_DIRS": "/tmp/kraft-combined-logs",
}
# The image's kafka-propertiesSpec.json: `KAFKA_*` variables that are the JVM's, not
# Kafka's. (It names KAFKA_HEAP_OPT, so KAFKA_HEAP_OPTS does become a property, `heap.opts`,
# which the broker ignores.)
IMAGE_EXCLUDES = frozenset(
    {
        "KAFKA_VERSION",
        "KAFKA_HEAP_OPT",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_LOG4J_ROOT_LOGLEVEL",
        "KAFKA_LOG4J_LOGGERS",
        "KAFKA_TOOLS_LOG4J_LOGLEVEL",
    }
)
_SINGLE_UNDERSCORE = re.compile(r"[^_]_[^_]")
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::-(?P<default>[^}]*))?\}")


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def interpolate(value: str) -> str:
    """`value` as compose sees it with nothing set in the environment: every
    `${NAME:-default}` its default. A `${NAME}` without one would start the stack with an
    empty value, so it is refused here."""

    def default(match: re.Match[str]) -> str:
        if match["default"] is None:
            raise ValueError(f"${{{match['name']}}} has no default in {value!r}")
        return match["default"]

    return _INTERPOLATION.sub(default, value)


def property_name(variable: str) -> str:
    """The image's rule: `KAFKA_` dropped, `_` → `.`, `__` → `_`, `___` → `-`, lower case.
    Single underscores are found as the image's utility finds them (a non-underscore on each
    side, matches never overlapping), so odd names render as they would there."""
    key = variable.removeprefix("KAFKA_")
    key = _SINGLE_UNDERSCORE.sub(lambda m: m.group().replace("_", "."), key)
    return key.replace("___", "-").replace("__", "_").lower()


def node_environment(service: Mapping[str, Any]) -> dict[str, str]:
    """A Kafka service's environment as its container gets it, the image's defaults included."""
    given = {k: interpolate(str(v)) for k, v in service.get("environment", {}).items()}
    return IMAGE_DEFAULTS | given


def server_properties(environment: Mapping[str, str]) -> dict[str, str]:
    return {
        property_name(key): value
        for key, value in environment.items()
        if key.startswith("KAFKA_") and key not in IMAGE_EXCLUDES
    }


def render(properties: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in sorted(properties.items()))


def listener_names(listeners: str) -> list[str]:
    """`INTERNAL://:9092,HOST://h:1` → ["INTERNAL", "HOST"]."""
    return [item.split("://", 1)[0] for item in listeners.split(",") if item.strip()]


def listener_problems(properties: Mapping[str, str]) -> list[str]:
    """What a broker would refuse at start about its listeners' names, as sentences: every
    name advertised, listened on or named for the brokers' and controllers' traffic must be
    a listener with a security protocol."""
    listening = listener_names(properties.get("listeners", ""))
    protocol_map = properties.get("listener.security.protocol.map", "")
    protocols = {entry.split(":", 1)[0] for entry in protocol_map.split(",") if entry}
    problems = [f"listener {n} has no security protocol" for n in listening if n not in protocols]
    for name in listener_names(properties.get("advertised.listeners", "")):
        if name not in listening:
            problems.append(f"advertised listener {name} is not among the listeners")
        if name not in protocols:
            problems.append(f"advertised listener {name} has no security protocol")
    named = [properties.get("inter.broker.listener.name", "")]
    named += properties.get("controller.listener.names", "").split(",")
    problems += [
        f"listener {n} is named but not among the listeners"
        for n in named
        if n and n not in listening
    ]
    return problems


def _names(entries: Any) -> Iterator[str]:
    """The names a service's `configs`/`secrets` refer to (short or long syntax)."""
    for entry in entries or []:
        yield entry if isinstance(entry, str) else entry["source"]


def _volumes(entries: Any) -> Iterator[tuple[str, bool]]:
    """(source, whether it is a named volume) for each of a service's `volumes`."""
    for entry in entries or []:
        if isinstance(entry, str):
            source = entry.split(":", 1)[0]
            yield source, not source.startswith((".", "/", "~"))
        else:
            yield entry["source"], entry.get("type", "volume") == "volume"


def reference_problems(compose: Mapping[str, Any], folder: Path) -> list[str]:
    """Every name a service refers to that the file does not declare, as sentences: the
    services it depends on, its named volumes, configs and secrets, and the host paths it
    mounts (relative to `folder`, the compose file's)."""
    services = compose["services"]
    declared = {kind: set(compose.get(kind) or {}) for kind in ("volumes", "configs", "secrets")}
    problems = []
    for name, service in services.items():
        problems += [
            f"{name} depends on {other}, which is not a service"
            for other in service.get("depends_on", [])
            if other not in services
        ]
        for kind in ("configs", "secrets"):
            problems += [
                f"{name} uses {kind[:-1]} {used}, which is not declared"
                for used in _names(service.get(kind))
                if used not in declared[kind]
            ]
        for source, named in _volumes(service.get("volumes")):
            if named and source not in declared["volumes"]:
                problems.append(f"{name} mounts volume {source}, which is not declared")
            if not named and not (folder / source).exists():
                problems.append(f"{name} mounts {source}, which does not exist")
    return problems


def broker_properties(compose: Mapping[str, Any], broker: str) -> dict[str, str]:
    return server_properties(node_environment(compose["services"][broker]))
