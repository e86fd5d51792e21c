-- Cron schedules. next_at is the next occurrence no worker has claimed yet. The cron text is interpreted
-- above the store (podium.triggers.cron).
CREATE TABLE schedules (
    name       TEXT COLLATE "C" PRIMARY KEY,
    flow       TEXT COLLATE "C" NOT NULL,
    cron       TEXT NOT NULL,
    tz         TEXT NOT NULL,
    input      TEXT,
    missed     TEXT NOT NULL,
    paused     BOOLEAN NOT NULL DEFAULT FALSE,
    next_at    DOUBLE PRECISION NOT NULL,
    last_at    DOUBLE PRECISION,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_at) WHERE NOT paused;
-- Occurrences a worker claimed (advancing next_at in the same transaction) but has not yet started a run
-- for. A worker that dies before starting them leaves the claim to expire, and another worker then starts them:
-- the run's idempotency key makes that start exactly-once.
CREATE TABLE schedule_fires (
    name        TEXT COLLATE "C" NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    flow        TEXT COLLATE "C" NOT NULL,
    input       TEXT,
    owner       TEXT NOT NULL,
    lease_until DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, at)
);
CREATE INDEX schedule_fires_lease ON schedule_fires (lease_until);
