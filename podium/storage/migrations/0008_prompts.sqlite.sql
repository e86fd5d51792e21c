-- The prompt registry: immutable, numbered versions of named templates (unique per content hash), labels that
-- point at a version (rev counts the label's moves, so a reader can tell cheaply whether it changed), every
-- label move (for rollback and audit), and A/B splits of live traffic. The store interprets none of it.
CREATE TABLE prompt_versions (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    template   TEXT NOT NULL,
    system     TEXT,
    variables  TEXT NOT NULL,
    model      TEXT,
    params     TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (name, hash)
);
CREATE TABLE prompt_labels (
    name       TEXT NOT NULL,
    label      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    rev        INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE prompt_moves (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL,
    from_version INTEGER,
    to_version   INTEGER NOT NULL,
    rollback     INTEGER NOT NULL,
    at           REAL NOT NULL
);
CREATE INDEX prompt_moves_label ON prompt_moves (name, label, id);
CREATE TABLE prompt_splits (
    name       TEXT PRIMARY KEY,
    arms       TEXT NOT NULL,
    updated_at REAL NOT NULL
);
