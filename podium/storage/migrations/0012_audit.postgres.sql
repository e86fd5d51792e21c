-- The audit trail: an append-only hash chain (podium/storage/audit.py) and its signed checkpoints.
CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY,
    at           DOUBLE PRECISION NOT NULL,
    actor        TEXT,
    action       TEXT NOT NULL,
    subject      TEXT,
    payload      TEXT,
    payload_hash TEXT NOT NULL,
    prev         TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit (subject);
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         DOUBLE PRECISION NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);
