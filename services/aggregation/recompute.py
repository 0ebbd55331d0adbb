"""`recompute`: the snapshots of one regime and period, folded again from the stored
contributions, compared with the stored snapshots. Exit status 1 when they differ."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared import codec
from shared.catalog import load_catalog
from shared.db import create_pool

from . import store
from .folds import frame_for, snapshots
from .settings import AggregationSettings


async def recompute(settings: AggregationSettings, regime: str, period: str) -> int:
    catalog = load_catalog(settings.catalog_dir)
    frame = frame_for(catalog, regime, period)
    if frame is None:
        sys.stderr.write(f"no version of {regime} is in force for {period}\n")
        return 2
    pool = await create_pool(settings.postgres, settings.postgres.schema_name("aggregation"))
    try:
        async with pool.acquire() as conn:
            state = await store.all_contributions(conn, regime, period)
            stored = {s.unit: s for s in await store.latest_snapshots(conn, regime, period)}
    finally:
        await pool.close()
    differences = 0
    for scope, figures in snapshots(state, frame).items():
        kept = stored.get(scope)
        same = kept is not None and (kept.values, kept.completeness) == (
            figures.values,
            figures.completeness,
        )
        differences += not same
        line = {
            "unit": scope,
            "matches_stored": same,
            "stored_version": kept.version if kept else None,
            "values": figures.values,
            "completeness": figures.completeness.model_dump(),
        }
        sys.stdout.write(codec.dumps(line).decode() + "\n")
    return 1 if differences else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.aggregation recompute")
    parser.add_argument("--regime", required=True)
    parser.add_argument("--period", required=True)
    args = parser.parse_args(argv)
    return asyncio.run(recompute(AggregationSettings(), args.regime, args.period))
