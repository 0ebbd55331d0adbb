-- Operators' exceptions to a period's lock, as opened: who, when, why, until when. Each is
-- also sent to validation on reports.received.v1, in order with the reports it concerns.
CREATE TABLE lock_exceptions (
    id         bigserial PRIMARY KEY,
    regime     text        NOT NULL,
    period     text        NOT NULL,
    unit       text        NOT NULL,
    expires_at timestamptz NOT NULL,
    reason     text        NOT NULL,
    opened_by  text        NOT NULL,
    opened_at  timestamptz NOT NULL
);
CREATE INDEX lock_exceptions_scope ON lock_exceptions (regime, period, unit);
