-- The outbox is a queue: every row is deleted within moments of its insert. Each dead row
-- left in the id index is stepped over by every relay that reads the queue from its head,
-- so vacuum it after a few thousand deletions rather than after a fifth of the table
-- (the default), and without the cost-based pauses.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0
);
