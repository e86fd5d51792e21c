-- Runs and their journals.
CREATE TABLE runs (
    id          TEXT PRIMARY KEY,
    flow        TEXT NOT NULL,
    status      TEXT NOT NULL,
    key         TEXT UNIQUE,
    input       TEXT,
    output      TEXT,
    error       TEXT,
    parent_id   TEXT,
    parent_step TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    ended_at    REAL,
    lease_owner TEXT,
    lease_until REAL,
    wake_at     REAL,
    deadline    REAL,
    inbox_seq   INTEGER NOT NULL DEFAULT 0,
    claims      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_status_flow ON runs (status, flow);
CREATE INDEX runs_created ON runs (created_at, id);
-- Unfinished runs only: keeps claiming fast however many finished runs the table holds.
CREATE INDEX runs_live ON runs (created_at) WHERE status IN ('pending', 'waiting', 'running');
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

CREATE TABLE events (
    seq    INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: it costs a write to sqlite_sequence per event
    run_id TEXT NOT NULL,
    kind   TEXT NOT NULL,
    step   TEXT NOT NULL,
    name   TEXT,
    data   TEXT,
    at     REAL NOT NULL,
    UNIQUE (run_id, kind, step)
);
CREATE INDEX events_approvals ON events (seq) WHERE kind = 'approval';
