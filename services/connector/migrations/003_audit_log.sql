-- Every operator action (who, when, what): the operator named by the credential that
-- called, written in the transaction of the action where it has one.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL,
    details jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_target ON audit_log (target, id);
