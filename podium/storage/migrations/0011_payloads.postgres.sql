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
