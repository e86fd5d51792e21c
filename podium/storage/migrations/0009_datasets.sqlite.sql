-- Datasets, feedback and evaluation results (podium.management). IF NOT EXISTS throughout: a database that
-- had already applied a later migration when this one was added can be given it again under a new number.
-- A dataset's items are versioned by append: each revision of an item is a new row whose version is the
-- dataset's next version; an item's id is stable, its newest revision at or below a version is what it holds.
CREATE TABLE IF NOT EXISTS datasets (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset_items (
    dataset    TEXT NOT NULL,
    version    INTEGER NOT NULL,
    id         TEXT NOT NULL,
    input      TEXT,
    expected   TEXT,
    metadata   TEXT,
    source     TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (dataset, version)
);
CREATE INDEX IF NOT EXISTS dataset_items_id ON dataset_items (dataset, id, version);
-- Human feedback on a step's output (a rating, a correction, an approval decided with an edited payload).
CREATE TABLE IF NOT EXISTS feedback (
    id         TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    step       TEXT NOT NULL,
    step_name  TEXT,
    kind       TEXT NOT NULL,
    score      INTEGER,
    comment    TEXT,
    original   TEXT,
    correction TEXT,
    model      TEXT,
    served_by  TEXT,
    prompt     TEXT,
    dataset    TEXT,
    item_id    TEXT,
    author     TEXT,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS feedback_run ON feedback (run_id, created_at);
CREATE INDEX IF NOT EXISTS feedback_created ON feedback (created_at);
-- Evaluations: a flow's variants run over a dataset's items and scored.
CREATE TABLE IF NOT EXISTS evals (
    id              TEXT PRIMARY KEY,
    dataset         TEXT NOT NULL,
    dataset_version INTEGER NOT NULL,
    flow            TEXT NOT NULL,
    variants        TEXT NOT NULL,
    scorers         TEXT NOT NULL,
    status          TEXT NOT NULL,
    created_at      REAL NOT NULL,
    finished_at     REAL,
    summary         TEXT
);
CREATE INDEX IF NOT EXISTS evals_created ON evals (created_at);
CREATE TABLE IF NOT EXISTS eval_results (
    eval_id    TEXT NOT NULL,
    variant    TEXT NOT NULL,
    item_id    TEXT NOT NULL,
    run_id     TEXT,
    output     TEXT,
    scores     TEXT NOT NULL,
    cost       REAL NOT NULL,
    latency    REAL NOT NULL,
    error      TEXT,
    created_at REAL NOT NULL,
    PRIMARY KEY (eval_id, variant, item_id)
)
