-- Every PUT the hub received, in the order it arrived, answered or not: the version it
-- carried (null: its body was no snapshot), the version the hub held for that scope when
-- it arrived (null: none), and the answer (null: the hub stopped before it answered).
-- Tests audit what a client sent here, which the answers alone do not show: a replay of
-- a version older than the one held is answered `unchanged` when its key was seen.
CREATE TABLE puts (
    id           bigserial PRIMARY KEY,
    regime       text        NOT NULL,
    period       text        NOT NULL,
    unit         text        NOT NULL,
    version      integer,
    held_version integer,
    arrived_at   timestamptz NOT NULL,
    status       integer,
    outcome      text,
    answered_at  timestamptz
);
