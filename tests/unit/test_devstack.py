"""The local servers' configuration, rendered and parsed without starting anything."""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from devstack import DevstackError
from devstack.__main__ import chosen, env_lines
from devstack.kafka import (
    KAFKA_VERSION,
    LOG4J_SLF4J_VERSION,
    KafkaAddress,
    installed_marker,
    render_pom,
    render_properties,
)
from devstack.paths import REPO_ROOT, Layout
from devstack.postgres import Dsn, render_settings
from devstack.processes import LogCursor, Outcome, Status
from devstack.supervisor import Run

POM = "{http://maven.apache.org/POM/4.0.0}"


def properties(text: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in text.splitlines() if not line.startswith("#"))
    return {key: value for key, _, value in pairs}


def test_kafka_runs_one_combined_kraft_node_that_creates_no_topic_by_itself() -> None:
    rendered = properties(render_properties(KafkaAddress("127.0.0.1", 9092), Path("/d")))

    assert rendered["process.roles"] == "broker,controller"
    assert rendered["node.id"] == "1"
    assert rendered["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert rendered["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert rendered["controller.quorum.bootstrap.servers"] == "127.0.0.1:9093"
    assert rendered["log.dirs"] == "/d"
    assert rendered["auto.create.topics.enable"] == "false"
    assert rendered["num.partitions"] == "12"
    assert rendered["offsets.topic.num.partitions"] == "12"
    assert rendered["transaction.state.log.min.isr"] == "1"
    assert rendered["group.initial.rebalance.delay.ms"] == "0"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        (None, KafkaAddress("127.0.0.1", 9092)),
        ("127.0.0.1:19092", KafkaAddress("127.0.0.1", 19092)),
        ("localhost:9094,localhost:9095", KafkaAddress("localhost", 9094)),
    ],
)
def test_kafka_address_is_the_first_bootstrap_server(
    configured: str | None, expected: KafkaAddress
) -> None:
    environ = {} if configured is None else {"BAOCAO_KAFKA__BOOTSTRAP_SERVERS": configured}

    assert KafkaAddress.from_env(environ) == expected


def test_a_bootstrap_server_without_port_is_refused() -> None:
    with pytest.raises(DevstackError, match="host:port"):
        KafkaAddress.from_env({"BAOCAO_KAFKA__BOOTSTRAP_SERVERS": "localhost"})


def test_the_pom_names_the_pinned_kafka_and_log4j_binding() -> None:
    project = ET.fromstring(render_pom())

    dependencies = {
        (d.findtext(f"{POM}artifactId"), d.findtext(f"{POM}version"))
        for d in project.iter(f"{POM}dependency")
    }
    assert dependencies == {
        ("kafka_2.13", KAFKA_VERSION),
        ("log4j-slf4j-impl", LOG4J_SLF4J_VERSION),
    }
    assert KAFKA_VERSION in installed_marker()


@pytest.mark.parametrize(
    ("configured", "port", "database"),
    [
        (None, 5432, "baocao"),
        ("postgresql://postgres@127.0.0.1:6543/other", 6543, "other"),
        ("postgresql://postgres@127.0.0.1/baocao", 5432, "baocao"),
    ],
)
def test_postgres_listens_where_the_dsn_points(
    configured: str | None, port: int, database: str
) -> None:
    environ = {} if configured is None else {"BAOCAO_POSTGRES__DSN": configured}

    dsn = Dsn.from_env(environ)

    assert (dsn.host, dsn.port, dsn.database, dsn.user) == ("127.0.0.1", port, database, "postgres")


def test_a_dsn_that_is_not_postgresql_is_refused() -> None:
    with pytest.raises(DevstackError, match="BAOCAO_POSTGRES__DSN"):
        Dsn.from_env({"BAOCAO_POSTGRES__DSN": "mysql://root@127.0.0.1/baocao"})


def test_postgres_settings_raise_connections_and_buffers() -> None:
    assert "max_connections = 200" in render_settings()
    assert "shared_buffers = 256MB" in render_settings()
    assert "autovacuum_naptime = 1s" in render_settings()
    assert "shared_preload_libraries = 'pg_stat_statements'" in render_settings()


def test_env_prints_exports_a_shell_can_source() -> None:
    lines = env_lines({"BAOCAO_POSTGRES__DSN": "postgresql://postgres@127.0.0.1:5432/a b"})

    assert lines == [
        "export BAOCAO_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092",
        "export BAOCAO_POSTGRES__DSN='postgresql://postgres@127.0.0.1:5432/a b'",
    ]


def test_state_lives_under_dot_local_unless_configured() -> None:
    assert Layout.from_env({}).local == REPO_ROOT / ".local"
    configured = Layout.from_env({"BAOCAO_LOCAL_DIR": "/srv/state"})
    assert configured.pid_file("kafka") == Path("/srv/state/run/kafka.pid")
    assert configured.log("postgres") == Path("/srv/state/logs/postgres.log")


@pytest.mark.parametrize(
    ("targets", "expected"),
    [
        ([], ["postgres", "kafka", "prometheus"]),
        (["all"], ["postgres", "kafka", "prometheus"]),
        (["prometheus", "kafka"], ["kafka", "prometheus"]),
    ],
)
def test_targets_default_to_all_in_start_order(targets: list[str], expected: list[str]) -> None:
    assert chosen(targets) == expected


def test_status_line_shows_state_pid_and_address() -> None:
    line = Status("kafka", "running", "127.0.0.1:9092", 4242).line()

    assert line.split() == ["kafka", "running", "pid", "4242", "127.0.0.1:9092"]


def test_a_failed_start_reports_only_its_own_error_lines(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    log.write_text("[t] ERROR from an earlier run\n")
    cursor = LogCursor(log)
    with log.open("a") as output:
        output.write("[t] INFO starting\n[t] ERROR bind failed\n\tat frame\nCaused by: in use\n")

    assert cursor.report().splitlines()[1:] == ["[t] ERROR bind failed", "Caused by: in use"]


def test_prometheus_scrapes_every_local_service_every_five_seconds() -> None:
    config = yaml.safe_load((REPO_ROOT / "deploy/prometheus/prometheus.local.yml").read_text())

    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert config["global"]["scrape_interval"] == "5s"
    assert targets == {
        "submission": ["127.0.0.1:8001"],
        "validation": ["127.0.0.1:8002"],
        "aggregation": ["127.0.0.1:8003"],
        "connector": ["127.0.0.1:8004"],
        "hub_simulator": ["127.0.0.1:8010"],
    }


class FakeServer:
    """A server that starts as told, for the run's own output."""

    def __init__(self, name: str, address: str, outcome: Outcome) -> None:
        self.name, self.address, self.outcome = name, address, outcome
        self.stopped = False

    def start(self) -> Outcome:
        return self.outcome

    def stop(self) -> bool:
        self.stopped = True
        return True

    def status(self) -> Status:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("outcome", "said"),
    [
        (Outcome.STARTED, "prometheus http://127.0.0.1:9090 (started in"),
        (Outcome.ALREADY_RUNNING, "prometheus already running http://127.0.0.1:9090"),
    ],
)
def test_the_run_prints_where_its_prometheus_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], outcome: Outcome, said: str
) -> None:
    servers = {
        "postgres": FakeServer("postgres", "postgresql://postgres@127.0.0.1:5432/baocao", outcome),
        "kafka": FakeServer("kafka", "127.0.0.1:9092", outcome),
        "prometheus": FakeServer("prometheus", "http://127.0.0.1:9090", outcome),
    }
    run = Run(Layout(repo=REPO_ROOT, local=tmp_path), servers, environ={}, traffic=False)

    run.start_servers()

    assert said in capsys.readouterr().out
    assert "  prometheus       http://127.0.0.1:9090" in run.banner().splitlines()


def test_without_prometheus_installed_the_run_says_so_and_names_no_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    servers = {
        "postgres": FakeServer("postgres", "postgresql://127.0.0.1:5432/b", Outcome.STARTED),
        "kafka": FakeServer("kafka", "127.0.0.1:9092", Outcome.STARTED),
        "prometheus": FakeServer("prometheus", "http://127.0.0.1:9090", Outcome.SKIPPED),
    }
    run = Run(Layout(repo=REPO_ROOT, local=tmp_path), servers, environ={}, traffic=False)

    run.start_servers()

    assert "prometheus not installed: skipped" in capsys.readouterr().out
    assert "9090" not in run.banner()


def test_a_run_whose_output_nobody_reads_any_more_still_stops_the_servers_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scripts/run | tee log` and a Ctrl-C: tee exits with the run's reader end of the pipe,
    and every line the run prints while stopping meets a broken pipe."""
    servers = {
        "postgres": FakeServer("postgres", "postgresql://127.0.0.1:5432/b", Outcome.STARTED),
        "kafka": FakeServer("kafka", "127.0.0.1:9092", Outcome.STARTED),
        "prometheus": FakeServer("prometheus", "http://127.0.0.1:9090", Outcome.STARTED),
    }
    run = Run(Layout(repo=REPO_ROOT, local=tmp_path), servers, environ={}, traffic=False)
    reader, writer = os.pipe()
    os.close(reader)
    with os.fdopen(writer, "w") as pipe:
        monkeypatch.setattr(sys, "stdout", pipe)
        monkeypatch.setattr(run, "check_ports", lambda: None)

        def interrupted(env: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(run, "start_services", interrupted)

        assert run() == 0

        assert [s.name for s in servers.values() if not s.stopped] == []
        assert sys.stdout is pipe
