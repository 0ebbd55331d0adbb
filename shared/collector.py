"""Python's cyclic garbage collector, set for services that work in batches.

A stage holds a whole batch (up to 2 000 reports, each a few dozen objects) until its
transaction commits. With Python's default threshold (a young collection every 700 new
objects), a batch set off hundreds of young collections, each scanning the batch's
survivors again, and full collections that walked every object built at start-up as well
(the catalog, the compiled rules, the imported libraries): about a tenth of each stage's
CPU flat out. Nearly all of a batch is freed by reference counting when it is done, so
collecting less often keeps little garbage longer.
"""

from __future__ import annotations

import gc


def tune(young_threshold: int) -> None:
    """A young collection every `young_threshold` new objects; 0 keeps Python's default."""
    if young_threshold > 0:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)


def freeze_startup() -> None:
    """Move every object alive now (start-up done) out of the collector's sight: they live
    as long as the process, and a full collection would walk them all for nothing."""
    gc.collect()
    gc.freeze()
