-- Durable delivery state per scope: the latest snapshot version known, the latest the hub
-- acknowledged, and what happened at the last attempt.
CREATE TABLE deliveries (
    regime          text        NOT NULL,
    period          text        NOT NULL,
    unit            text        NOT NULL,
    version         integer     NOT NULL,
    snapshot        jsonb       NOT NULL,
    computed_at     timestamptz NOT NULL,
    newest_receipt  timestamptz,
    acked_version   integer     NOT NULL DEFAULT 0,
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity',
    lease_until     timestamptz NOT NULL DEFAULT '-infinity',
    parked_version  integer,
    last_status     integer,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (regime, period, unit)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE acked_version < version;
