-- Every verdict given, by report id: a redelivered report is recognised and not judged twice.
CREATE TABLE verdicts (
    report_id  text PRIMARY KEY,
    regime     text        NOT NULL,
    period     text        NOT NULL,
    unit       text        NOT NULL,
    revision   integer     NOT NULL,
    status     text        NOT NULL,
    outcome    jsonb       NOT NULL,
    decided_at timestamptz NOT NULL
);

-- The latest accepted revision of each (regime, period, unit): a correction must exceed it.
CREATE TABLE latest_accepted (
    regime    text    NOT NULL,
    period    text    NOT NULL,
    unit      text    NOT NULL,
    revision  integer NOT NULL,
    report_id text    NOT NULL,
    PRIMARY KEY (regime, period, unit)
);

-- Operators' exceptions to a period's lock, for one unit, until they expire (recorded
-- with who opened them, when and why).
CREATE TABLE lock_exceptions (
    regime     text        NOT NULL,
    period     text        NOT NULL,
    unit       text        NOT NULL,
    expires_at timestamptz NOT NULL,
    reason     text        NOT NULL,
    opened_by  text        NOT NULL,
    opened_at  timestamptz NOT NULL,
    PRIMARY KEY (regime, period, unit, opened_at)
);
