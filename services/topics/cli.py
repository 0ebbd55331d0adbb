"""`python -m services.topics [--dry-run]`: provision the production topics.

Reads the same settings as the services (`BAOCAO_KAFKA__*`: bootstrap servers, security,
partitions, replication factor, min.insync.replicas) plus retention (`BAOCAO_TOPICS__*`),
reconciles the system's topics and each source's own ones found on the cluster
(`reports.inbound.v1.<source>`, `reports.outcomes.v1.<source>`), prints one line per
decision and exits 0 when every topic is as declared, 1 when something needs an operator
(the line says what), 2 when the cluster cannot be reached. Running it again changes
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaError

from shared.source_topics import source_topic_configs

from . import admin
from .plan import Plan, check_durability, describe, found_source_topics, plan, with_retention
from .settings import TopicsSettings

CONNECT_DEADLINE_S = 120.0


async def provision(settings: TopicsSettings, *, dry_run: bool) -> Plan:
    kafka = settings.kafka
    desired = with_retention(
        admin.declared_topics(kafka), settings.topics.events_days, settings.topics.dlq_days
    )
    async with admin.connected(kafka, CONNECT_DEADLINE_S) as client:
        brokers = await admin.broker_count(client)
        problems, notes = check_durability(
            kafka.replication_factor, kafka.min_insync_replicas, brokers
        )
        sources = await admin.source_topic_names(client, kafka)
        actual = await admin.read_state(client, [*(t.name for t in desired), *sources])
        configs = source_topic_configs(kafka, settings.topics)
        found = [actual[name] for name in sources if name in actual]
        desired += found_source_topics(found, kafka.replication_factor, configs)
        decided = plan(desired, actual)
        decided = dataclasses.replace(
            decided,
            problems=(*problems, *decided.problems),
            notes=(*notes, *decided.notes),
            source_topics=tuple(state.name for state in found),
        )
        if not dry_run and not problems:
            await admin.apply(client, decided)
    return decided


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.topics",
        description="Create and reconcile baocao's Kafka topics (idempotent).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would change, change nothing"
    )
    arguments = parser.parse_args(argv)
    settings = TopicsSettings()
    kafka = settings.kafka
    print(
        f"topics on {kafka.bootstrap_servers}: {kafka.partitions} partitions, "
        f"replication {kafka.replication_factor}, "
        f"min.insync.replicas {kafka.min_insync_replicas or 'broker default'}"
        + (" (dry run)" if arguments.dry_run else ""),
        flush=True,
    )
    try:
        decided = asyncio.run(provision(settings, dry_run=arguments.dry_run))
    except (KafkaError, OSError) as error:
        print(f"error: Kafka at {kafka.bootstrap_servers}: {error!r}", file=sys.stderr)
        return 2
    for line in describe(decided):
        print(line)
    if decided.problems:
        print(f"{len(decided.problems)} problem(s): nothing unsafe was changed", file=sys.stderr)
        return 1
    created, reconfigured = (
        ("would create", "would reconfigure") if arguments.dry_run else ("created", "reconfigured")
    )
    print(
        f"done: {created} {len(decided.create)}, {reconfigured} {len(decided.reconfigure)}, "
        f"{len(decided.in_sync)} in sync"
    )
    return 0
