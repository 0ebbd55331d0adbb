-- The inbox: every accepted report applied, by business key, written in the same
-- transaction as its effect so that a redelivery is recognised and never counted twice.
CREATE TABLE applied (
    report_id  text PRIMARY KEY,
    revision   integer     NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- The fold's state: per (regime, period, unit), the latest accepted revision counted and
-- the timeliness of the first accepted one.
CREATE TABLE contributions (
    regime         text        NOT NULL,
    period         text        NOT NULL,
    unit           text        NOT NULL,
    revision       integer     NOT NULL,
    report_id      text        NOT NULL,
    values         jsonb       NOT NULL,
    received_at    timestamptz NOT NULL,
    first_revision integer     NOT NULL,
    first_on_time  boolean     NOT NULL,
    PRIMARY KEY (regime, period, unit)
);

-- The latest snapshot of every scope, with its version.
CREATE TABLE snapshots (
    regime         text        NOT NULL,
    period         text        NOT NULL,
    unit           text        NOT NULL,
    version        integer     NOT NULL,
    regime_version integer     NOT NULL,
    values         jsonb       NOT NULL,
    completeness   jsonb       NOT NULL,
    computed_at    timestamptz NOT NULL,
    PRIMARY KEY (regime, period, unit)
);
