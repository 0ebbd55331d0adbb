-- Every report accepted for processing, byte for byte as it arrived (audit trail), keyed
-- by the sender's idempotency key.
CREATE TABLE reports (
    report_id   text PRIMARY KEY,
    regime      text        NOT NULL,
    period      text        NOT NULL,
    unit        text        NOT NULL,
    revision    integer     NOT NULL,
    body        bytea       NOT NULL,
    channel     text        NOT NULL,
    received_at timestamptz NOT NULL,
    -- Where a Kafka copy came from: a redelivery of the same record is not a duplicate.
    source_topic     text,
    source_partition integer,
    source_offset    bigint
);

-- The verdict on each report, as published on reports.outcomes.v1 (for GET and duplicates).
CREATE TABLE verdicts (
    report_id  text PRIMARY KEY,
    status     text        NOT NULL,
    -- An E100/E150 answer to a message that was not a report: any real verdict replaces it.
    contract_only boolean  NOT NULL,
    outcome    jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Duplicates that arrived before the original's verdict: answered when it arrives.
CREATE TABLE pending_duplicates (
    id          bigserial PRIMARY KEY,
    report_id   text        NOT NULL,
    received_at timestamptz NOT NULL,
    channel     text        NOT NULL
);
CREATE INDEX pending_duplicates_report_id ON pending_duplicates (report_id);
