-- The prompt registry: immutable, numbered versions of named templates (unique per content hash), labels that
-- point at a version (rev counts the label's moves, so a reader can tell cheaply whether it changed), every
-- label move (for rollback and audit), and A/B splits of live traffic. The store interprets none of it.
CREATE TABLE prompt_versions (
    name       TEXT COLLATE "C" NOT NULL,
    version    INTEGER NOT NULL,
    hash       TEXT COLLATE "C" NOT NULL,
    template   TEXT NOT NULL,
    system     TEXT,
    variables  TEXT NOT NULL,
    model      TEXT,
    params     TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, hash)
);
CREATE TABLE prompt_labels (
    name       TEXT COLLATE "C" NOT NULL,
    label      TEXT COLLATE "C" NOT NULL,
    version    INTEGER NOT NULL,
    rev        INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE prompt_moves (
    id           BIGSERIAL PRIMARY KEY,
    name         TEXT COLLATE "C" NOT NULL,
    label        TEXT COLLATE "C" NOT NULL,
    from_version INTEGER,
    to_version   INTEGER NOT NULL,
    rollback     BOOLEAN NOT NULL,
    at           DOUBLE PRECISION NOT NULL
);
CREATE INDEX prompt_moves_label ON prompt_moves (name, label, id);
CREATE TABLE prompt_splits (
    name       TEXT COLLATE "C" PRIMARY KEY,
    arms       TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
