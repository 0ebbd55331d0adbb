"""Command line of the bench: choose the run, print the table, write the JSON.

    python -m bench [--quick] [--rate N] [--seconds S] [--reports N] [--profile] [--keep]
                    [--set BAOCAO_NAME=VALUE ...]

Exit status 0 when the run completed and its checks found no counting error (whether the
targets are met is in the table and the JSON: figures are read, never asserted); 1 when a
check failed; 2 when the servers are not reachable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from bench.figures import table
from bench.run import FULL, QUICK, run
from shared.contracts import OUTCOMES

BOOTSTRAP = "BAOCAO_KAFKA__BOOTSTRAP_SERVERS"
DSN = "BAOCAO_POSTGRES__DSN"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Run the pipeline under load on the local Kafka and PostgreSQL and "
        "measure it: latency at a fixed rate, throughput flat out, a replay, and the raw "
        "relay limit. Prints a table and writes bench/results/latest.json.",
    )
    root.add_argument("--quick", action="store_true", help="a short run (under two minutes)")
    root.add_argument("--rate", type=float, help="reports/s offered in the latency run")
    root.add_argument("--seconds", type=float, help="duration of the latency run")
    root.add_argument("--reports", type=int, help="reports sent flat out in the throughput run")
    root.add_argument(
        "--profile",
        action="store_true",
        help="sample every service with py-spy during the throughput run",
    )
    root.add_argument("--keep", action="store_true", help="keep the run's topics and schemas")
    root.add_argument("--seed", type=int, help="seed of the workload")
    root.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="BAOCAO_NAME=VALUE",
        type=setting,
        help="a setting for every service under test, to compare settings (repeatable)",
    )
    return root


def setting(text: str) -> tuple[str, str]:
    """`BAOCAO_NAME=VALUE`: only the services' own settings can be set."""
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("BAOCAO_") or name == "BAOCAO_":
        raise argparse.ArgumentTypeError(f"expected BAOCAO_NAME=VALUE, got {text!r}")
    return name, value


def _reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=2):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        bootstrap=os.environ.get(BOOTSTRAP, plan.bootstrap).split(",")[0],
        dsn=os.environ.get(DSN, plan.dsn),
        profile=args.profile,
        keep=args.keep,
        settings=dict(args.set),
    )
    overrides = {"rate": args.rate, "seconds": args.seconds, "flat_out": args.reports}
    plan = replace(plan, **{k: v for k, v in overrides.items() if v is not None})
    if args.seed is not None:
        plan = replace(plan, seed=args.seed)
    dsn = urlsplit(plan.dsn)
    for name, address in (
        ("Kafka", plan.bootstrap),
        ("PostgreSQL", f"{dsn.hostname or '127.0.0.1'}:{dsn.port or 5432}"),
    ):
        if not _reachable(address):
            print(f"bench: {name} is not reachable at {address}: run scripts/servers start")
            return 2
    # A SIGTERM unwinds like Ctrl-C, so the services the run started are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = asyncio.run(run(plan))
    plan.results.mkdir(parents=True, exist_ok=True)
    out: Path = plan.results / "latest.json"
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print()
    print(table(result))
    print(f"\nwritten: {out}")
    checks = result["checks"]
    failed = (
        checks["verdicts_missing"]
        or checks["unmatched_snapshots"]
        or checks["final_snapshots_not_the_fold"]
        or not result["replay"]["identical"]
        or set(result["replay"]["messages_published"]) - {OUTCOMES.name}
    )
    return 1 if failed else 0
