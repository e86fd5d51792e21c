-- Content-addressed payloads (podium/storage/payloads.py): large values of journal rows kept once by SHA-256.
-- data is NULL when the payload lives in the blob directory (in_file). payload_refs says which run references
-- which payload; retention deletes a finished run's references, then every unreferenced payload. Writers hold
-- the feed lock shared and garbage collection holds it exclusively, so a payload that a commit in flight
-- references is never deleted under it.
CREATE TABLE payloads (
    hash       TEXT COLLATE "C" PRIMARY KEY,
    size       BIGINT NOT NULL,
    stored     BIGINT NOT NULL,
    codec      TEXT NOT NULL,
    in_file    BOOLEAN NOT NULL DEFAULT FALSE,
    data       BYTEA,
    created_at DOUBLE PRECISION NOT NULL
);
ALTER TABLE payloads ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE payload_refs (
    run_id TEXT COLLATE "C" NOT NULL,
    hash   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (run_id, hash)
);
CREATE INDEX payload_refs_hash ON payload_refs (hash);
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;

-- Resumable token streams: a streaming model step's text, in chunks, readable while the step runs. epoch
-- counts the step's executions that streamed (a retry or a takeover starts the next one, with a reset row:
-- text NULL); "offset" is where the chunk's text starts within its epoch's text. Writers lock the run's row,
-- so within a run, id order is commit order (a reader never skips a chunk committed late).
CREATE TABLE stream_chunks (
    id       BIGSERIAL PRIMARY KEY,
    run_id   TEXT COLLATE "C" NOT NULL,
    step     TEXT COLLATE "C" NOT NULL,
    epoch    INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    text     TEXT,
    at       DOUBLE PRECISION NOT NULL
);
CREATE INDEX stream_chunks_run ON stream_chunks (run_id, id);
