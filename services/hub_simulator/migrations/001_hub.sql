-- What the simulated national hub holds: the latest version of every scope.
CREATE TABLE aggregates (
    regime    text        NOT NULL,
    period    text        NOT NULL,
    unit      text        NOT NULL,
    version   integer     NOT NULL,
    body      jsonb       NOT NULL,
    stored_at timestamptz NOT NULL,
    PRIMARY KEY (regime, period, unit)
);

-- Everything it accepted (stored), in order, for audits by tests and operators.
CREATE TABLE received (
    id              bigserial PRIMARY KEY,
    regime          text        NOT NULL,
    period          text        NOT NULL,
    unit            text        NOT NULL,
    version         integer     NOT NULL,
    idempotency_key text        NOT NULL UNIQUE,
    body_sha256     text        NOT NULL,
    stored_at       timestamptz NOT NULL
);
