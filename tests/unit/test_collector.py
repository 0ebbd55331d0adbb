import gc
from collections.abc import Iterator

import pytest

from shared import collector


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_young_threshold_is_set_and_the_older_ones_kept(
    thresholds: tuple[int, int, int],
) -> None:
    collector.tune(10_000)
    assert gc.get_threshold() == (10_000, thresholds[1], thresholds[2])


def test_zero_keeps_pythons_own_threshold(thresholds: tuple[int, int, int]) -> None:
    collector.tune(0)
    assert gc.get_threshold() == thresholds
