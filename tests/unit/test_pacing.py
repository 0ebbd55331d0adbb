import asyncio

import pytest

from shared.pacing import paced

pytestmark = pytest.mark.unit


async def test_every_item_comes_in_order_and_the_loop_runs_between_turns() -> None:
    loop = asyncio.get_running_loop()
    turns: list[int] = []  # how many items had come each time the event loop got a turn
    seen: list[int] = []
    handle: asyncio.Handle

    def on_turn() -> None:
        nonlocal handle
        turns.append(len(seen))
        handle = loop.call_soon(on_turn)

    handle = loop.call_soon(on_turn)
    async for item in paced(range(100), per_turn=32):
        seen.append(item)
    handle.cancel()

    assert seen == list(range(100))
    assert turns == [32, 64, 96]
