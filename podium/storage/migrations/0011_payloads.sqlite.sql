-- Content-addressed payloads (podium/storage/payloads.py): large values of journal rows kept once by SHA-256.
-- data is NULL when the payload lives in the blob directory (in_file = 1). payload_refs says which run
-- references which payload; retention deletes a finished run's references, then every unreferenced payload.
CREATE TABLE payloads (
    hash       TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    stored     INTEGER NOT NULL,
    codec      TEXT NOT NULL,
    in_file    INTEGER NOT NULL DEFAULT 0,
    data       BLOB,
    created_at REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE payload_refs (
    run_id TEXT NOT NULL,
    hash   TEXT NOT NULL,
    PRIMARY KEY (run_id, hash)
) WITHOUT ROWID;
CREATE INDEX payload_refs_hash ON payload_refs (hash);
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
