-- A counter per regime-period, raised by every transaction that changes its contributions or
-- snapshots: an instance that keeps a regime-period's state in memory checks it at each batch
-- and reloads from the tables when another writer (an instance that held the partition
-- during a rebalance, `recompute --publish`) has moved it.
CREATE TABLE generations (
    regime     text   NOT NULL,
    period     text   NOT NULL,
    generation bigint NOT NULL,
    PRIMARY KEY (regime, period)
);
