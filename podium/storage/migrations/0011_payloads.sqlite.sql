-- Content-addressed payloads (podium/storage/payloads.py): large values of journal rows kept once by SHA-256.
-- data is NULL when the payload lives in the blob directory (in_file = 1). payload_refs says which run
-- references which payload; retention deletes a finished run's references, then every unreferenced payload.
-- Every durable commit writes each B-tree page it touched in full (to the WAL, then at checkpoint), so the
-- tables keep to few B-trees: payloads is a rowid table (new rows go to its last page) with one index on hash,
-- and payload_refs has none on hash (a collection reads it whole, once).
CREATE TABLE payloads (
    hash       TEXT NOT NULL UNIQUE,
    size       INTEGER NOT NULL,
    stored     INTEGER NOT NULL,
    codec      TEXT NOT NULL,
    in_file    INTEGER NOT NULL DEFAULT 0,
    data       BLOB,
    created_at REAL NOT NULL
);
CREATE TABLE payload_refs (
    run_id TEXT NOT NULL,
    hash   TEXT NOT NULL,
    PRIMARY KEY (run_id, hash)
) WITHOUT ROWID;
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;

-- Resumable token streams: a streaming model step's text, in chunks, readable while the step runs. epoch
-- counts the step's executions that streamed (a retry or a takeover starts the next one, with a reset row:
-- text NULL); offset is where the chunk's text starts within its epoch's text.
CREATE TABLE stream_chunks (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    step   TEXT NOT NULL,
    epoch  INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    text   TEXT,
    at     REAL NOT NULL
);
CREATE INDEX stream_chunks_run ON stream_chunks (run_id, id);
