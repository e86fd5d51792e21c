-- The audit trail: an append-only hash chain (podium/storage/audit.py) and its signed checkpoints.
CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY,
    at           REAL NOT NULL,
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
    seq        INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    at         REAL NOT NULL,
    public_key TEXT NOT NULL,
    signature  TEXT NOT NULL
);
