-- Cron schedules. next_at is the next occurrence no worker has claimed yet. The cron text is interpreted
-- above the store (podium.triggers.cron).
CREATE TABLE schedules (
    name       TEXT PRIMARY KEY,
    flow       TEXT NOT NULL,
    cron       TEXT NOT NULL,
    tz         TEXT NOT NULL,
    input      TEXT,
    missed     TEXT NOT NULL,
    paused     INTEGER NOT NULL DEFAULT 0,
    next_at    REAL NOT NULL,
    last_at    REAL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE paused = 0;
-- Occurrences a worker claimed (advancing next_at in the same transaction) but has not yet started a run
-- for. A worker that dies before starting them leaves the claim to expire, and another worker then starts them:
-- the run's idempotency key makes that start exactly-once.
CREATE TABLE schedule_fires (
    name        TEXT NOT NULL,
    at          REAL NOT NULL,
    flow        TEXT NOT NULL,
    input       TEXT,
    owner       TEXT NOT NULL,
    lease_until REAL NOT NULL,
    PRIMARY KEY (name, at)
);
CREATE INDEX schedule_fires_lease ON schedule_fires (lease_until);
