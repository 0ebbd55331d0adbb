import asyncio

import pytest

from shared.pacing import paced

pytestmark = pytest.mark.unit


async def test_every_item_comes_in_order_and_other_tasks_run_between_turns() -> None:
    turns: list[int] = []  # how many items had come when the other task ran
    seen: list[int] = []

    async def other() -> None:
        while True:
            turns.append(len(seen))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(other())
    await asyncio.sleep(0)  # the other task starts before the loop
    async for item in paced(range(100), per_turn=32):
        seen.append(item)
    watcher.cancel()

    assert seen == list(range(100))
    assert turns == [0, 32, 64, 96]
