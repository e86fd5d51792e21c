-- Runs and their journals (PostgreSQL). Mirrors 0001_init.sqlite.sql. Identifiers and names are COLLATE "C"
-- so that ordering and prefix ranges compare bytes, as SQLite does. JSON is kept as TEXT, exactly as the
-- engine wrote it: JSONB would reorder object keys and turn 1e20 into an integer.
CREATE TABLE runs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    flow        TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL,
    key         TEXT COLLATE "C" UNIQUE,
    input       TEXT,
    output      TEXT,
    error       TEXT,
    parent_id   TEXT COLLATE "C",
    parent_step TEXT COLLATE "C",
    created_at  DOUBLE PRECISION NOT NULL,
    updated_at  DOUBLE PRECISION NOT NULL,
    ended_at    DOUBLE PRECISION,
    lease_owner TEXT COLLATE "C",
    lease_until DOUBLE PRECISION,
    wake_at     DOUBLE PRECISION,
    deadline    DOUBLE PRECISION,
    inbox_seq   INTEGER NOT NULL DEFAULT 0,
    claims      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_status_flow ON runs (status, flow);
CREATE INDEX runs_created ON runs (created_at, id);
-- Unfinished runs only: keeps claiming fast however many finished runs the table holds.
CREATE INDEX runs_live ON runs (created_at) WHERE status IN ('pending', 'waiting', 'running');
CREATE INDEX runs_parent ON runs (parent_id) WHERE parent_id IS NOT NULL;

-- Every writer of a run's events holds that run's row lock (SELECT ... FOR UPDATE) while it inserts, so
-- within one run, seq order is commit order (a reader that saw seq n never misses a later-committed m < n).
CREATE TABLE events (
    seq    BIGSERIAL PRIMARY KEY,
    run_id TEXT COLLATE "C" NOT NULL,
    kind   TEXT COLLATE "C" NOT NULL,
    step   TEXT COLLATE "C" NOT NULL,
    name   TEXT COLLATE "C",
    data   TEXT,
    at     DOUBLE PRECISION NOT NULL,
    UNIQUE (run_id, kind, step)
);
CREATE INDEX events_run_seq ON events (run_id, seq);
CREATE INDEX events_approvals ON events (seq) WHERE kind = 'approval';

-- podium_check(ok) raises (SQLSTATE PD001) unless ok. A commit sends its whole transaction in one round trip
-- (pipeline mode) and lets it abort itself when a lease or a position check fails; the store then redoes that
-- batch step by step to tell each run's outcome.
CREATE FUNCTION podium_check(ok BOOLEAN) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'podium: check failed' USING ERRCODE = 'PD001';
    END IF;
    RETURN ok;
END
$$;
