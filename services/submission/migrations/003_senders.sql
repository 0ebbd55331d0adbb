-- Sources: the local systems that may send reports, each with the units it may report for.
-- Credentials are kept only as Argon2id hashes; the credential itself is shown once.
CREATE TABLE sources (
    name                text PRIMARY KEY,
    units               text[]      NOT NULL,
    credential_hash     text        NOT NULL,
    -- Every report of this source must carry a valid signature (E142 otherwise).
    signatures_required boolean     NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL,
    rotated_at          timestamptz,
    revoked_at          timestamptz
);

-- Ed25519 public keys a source signs its reports with (raw 32 bytes).
CREATE TABLE source_keys (
    source     text        NOT NULL REFERENCES sources (name),
    key_id     text        NOT NULL,
    public_key bytea       NOT NULL,
    added_at   timestamptz NOT NULL,
    revoked_at timestamptz,
    PRIMARY KEY (source, key_id)
);

-- Operators: who may call the operator endpoints.
CREATE TABLE operators (
    name            text PRIMARY KEY,
    credential_hash text        NOT NULL,
    created_at      timestamptz NOT NULL,
    rotated_at      timestamptz,
    revoked_at      timestamptz
);

-- Every operator action (who, when, what), written in the transaction of the action.
CREATE TABLE audit_log (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL,
    actor   text        NOT NULL,
    action  text        NOT NULL,
    target  text        NOT NULL,
    details jsonb       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_log_target ON audit_log (target, id);

-- Who sent each stored report, and the signature it carried, for audit.
ALTER TABLE reports
    ADD COLUMN sender           text,
    ADD COLUMN signature_key_id text,
    ADD COLUMN signature        text;

-- A duplicate's answer goes to the sender of the duplicate, not of the original.
ALTER TABLE pending_duplicates ADD COLUMN sender text;
