"""Typed settings, read once from the environment (`BAOCAO_` prefix, `__` for nesting).

Defaults are the local run's: every server on loopback. Each service subclasses
`ServiceSettings` with one section of its own, e.g. `BAOCAO_SUBMISSION__PORT=8001`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.clock import Clock, clock_from
from shared.contracts import TopicSpec

REPO_ROOT = Path(__file__).resolve().parents[1]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    namespace: str = Field(
        default="",
        description="Prefix of every topic and consumer group; tests isolate runs with it.",
    )
    group_namespace: str | None = Field(
        default=None,
        description="Prefix of the consumer groups when it differs from `namespace`: new "
        "groups read every topic again from its start (a replay into the same database).",
    )
    partitions: int = Field(default=12, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    min_insync_replicas: int | None = Field(default=None, ge=1)
    dlq_partitions: int = Field(default=3, ge=1)
    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-512", "PLAIN"] = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    batch_max_records: int = Field(
        default=2000,
        ge=1,
        description="The most records a consumer takes at once: each batch is one database "
        "transaction and one offset commit, so a backlog is worked off in fewer of them.",
    )
    batch_timeout_ms: int = Field(default=20, ge=1)
    fetch_min_bytes: int = Field(
        default=65_536,
        ge=1,
        description="A fetch returns once this much is waiting (or after `fetch_max_wait_ms`): "
        "fewer, fuller fetches, which is most of the broker's work under a steady flow.",
    )
    fetch_max_wait_ms: int = Field(
        default=200,
        ge=0,
        description="How long a fetch waits for `fetch_min_bytes` when little is flowing: "
        "each consumer polls the broker this often while idle.",
    )
    max_poll_interval_ms: int = Field(default=300_000, ge=10_000)
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    request_timeout_ms: int = Field(
        default=30_000, ge=1_000, description="Deadline of every request to a broker."
    )
    metadata_max_age_ms: int = Field(
        default=60_000,
        ge=1_000,
        description="How often clients refresh the cluster's metadata: a pattern "
        "subscription (each source's own topic) sees a new topic within this time.",
    )

    def topic(self, spec: TopicSpec | str) -> str:
        name = spec if isinstance(spec, str) else spec.name
        return f"{self.namespace}{name}"

    def dlq(self, spec: TopicSpec) -> str:
        return self.topic(spec.dlq)

    def group(self, name: str) -> str:
        prefix = self.namespace if self.group_namespace is None else self.group_namespace
        return f"{prefix}baocao.{name}"


class PostgresSettings(_Section):
    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/baocao")
    schema_prefix: str = Field(
        default="", description="Prefix of every service's schema; tests isolate runs with it."
    )
    pool_min_size: int = Field(default=1, ge=1)
    pool_max_size: int = Field(default=10, ge=1)
    command_timeout_s: float = Field(
        default=60.0, gt=0, description="Deadline of every statement sent to PostgreSQL."
    )

    def schema_name(self, service: str) -> str:
        return f"{self.schema_prefix}{service}"


DAY_MS = 86_400_000


class RetentionSection(_Section):
    """How long Kafka keeps records. PostgreSQL holds every report and verdict for good;
    Kafka's retention only has to outlast a consumer's downtime. Topic provisioning sets it
    on every topic, and submission on each source's own topics as it creates them."""

    events_days: int = Field(
        default=14,
        ge=1,
        description="Reports, verdicts and hub results: longer than the Tết holiday (up to "
        "9 days), so a consumer stopped over it loses nothing.",
    )
    dlq_days: int = Field(
        default=30, ge=1, description="Dead letters: time for an operator to inspect and replay."
    )


class HubSettings(_Section):
    """The national hub (Hệ thống thông tin báo cáo Chính phủ), or its simulator."""

    url: str = "http://127.0.0.1:8010"
    client_id: str = "baocao-tb"
    client_secret: SecretStr = SecretStr("local-development-secret")
    timeout_s: float = Field(default=10.0, gt=0)


class ServiceSettings(BaseSettings):
    """What every service reads; defaults are the local run's."""

    model_config = SettingsConfigDict(
        env_prefix="BAOCAO_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    postgres: PostgresSettings = PostgresSettings()
    topics: RetentionSection = RetentionSection()
    now: AwareDatetime | None = Field(
        default=None,
        description="Start the clock at this instant (ISO 8601 with offset); unset in production.",
    )
    now_anchor: float | None = Field(
        default=None,
        description="Real epoch second at which the clock reads `now`; one value per run keeps "
        "every service's clock in step. Defaults to the process start.",
    )
    catalog_dir: Path = REPO_ROOT / "catalog"
    host: str = "127.0.0.1"
    forwarded_allow_ips: tuple[str, ...] = Field(
        default=(),
        description="Addresses or networks (e.g. 10.0.0.0/8) of the proxies whose "
        "X-Forwarded-For names the client; empty: the connection's own address is the "
        "client's. Behind an ingress, list the ingress's network, or every caller has its "
        "address (and shares its limit on failed credential checks).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"
    instance: str = Field(default="", description="Instance name in logs; defaults to the pid.")
    metrics_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="How often backlogs, consumer lag and regime progress "
        "are sampled into their gauges (the local Prometheus scrapes every 5 s).",
    )
    gc_young_threshold: int = Field(
        default=10_000,
        ge=0,
        description="New objects between two of the garbage collector's young collections "
        "(Python's default is 700; 0 keeps it): see `shared.collector`.",
    )

    def clock(self) -> Clock:
        return clock_from(self.now, self.now_anchor)
