"""The memory layer's own numbered migrations (table ``memory_migrations``), on the run store's SQLite file.

They are separate from the run store's migrations (``podium/storage/migrations``): the memory layer knows
no storage code and opens its own connection to the same file.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE IF NOT EXISTS mem_spaces (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  model TEXT NOT NULL,
  dim INTEGER NOT NULL,
  version INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS mem_items (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  space INTEGER NOT NULL REFERENCES mem_spaces(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  doc TEXT,
  source TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL,
  tag TEXT NOT NULL,
  metadata TEXT NOT NULL DEFAULT '{}',
  vector BLOB NOT NULL,
  created_at REAL NOT NULL,
  expires_at REAL,
  UNIQUE (space, key)
);
CREATE INDEX IF NOT EXISTS mem_items_doc ON mem_items(space, doc);
CREATE INDEX IF NOT EXISTS mem_items_expiry ON mem_items(expires_at) WHERE expires_at IS NOT NULL;
CREATE VIRTUAL TABLE IF NOT EXISTS mem_fts USING fts5(
  text, tag, content='mem_items', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS mem_items_ai AFTER INSERT ON mem_items BEGIN
  INSERT INTO mem_fts(rowid, text, tag) VALUES (new.id, new.text, new.tag);
END;
CREATE TRIGGER IF NOT EXISTS mem_items_ad AFTER DELETE ON mem_items BEGIN
  INSERT INTO mem_fts(mem_fts, rowid, text, tag) VALUES ('delete', old.id, old.text, old.tag);
END;
CREATE TRIGGER IF NOT EXISTS mem_items_au AFTER UPDATE ON mem_items BEGIN
  INSERT INTO mem_fts(mem_fts, rowid, text, tag) VALUES ('delete', old.id, old.text, old.tag);
  INSERT INTO mem_fts(rowid, text, tag) VALUES (new.id, new.text, new.tag);
END;
CREATE TABLE IF NOT EXISTS mem_docs (
  space INTEGER NOT NULL REFERENCES mem_spaces(id) ON DELETE CASCADE,
  doc TEXT NOT NULL,
  hash TEXT NOT NULL,
  chunks INTEGER NOT NULL,
  source TEXT NOT NULL,
  updated_at REAL NOT NULL,
  PRIMARY KEY (space, doc)
);
CREATE TABLE IF NOT EXISTS mem_staging (
  run TEXT NOT NULL,
  doc TEXT NOT NULL,
  n INTEGER NOT NULL,
  text TEXT NOT NULL,
  metadata TEXT NOT NULL,
  vector BLOB,
  PRIMARY KEY (run, doc, n)
);
CREATE TABLE IF NOT EXISTS mem_cache (
  space INTEGER NOT NULL REFERENCES mem_spaces(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (space, key)
);
CREATE TABLE IF NOT EXISTS mem_messages (
  thread TEXT NOT NULL,
  seq INTEGER NOT NULL,
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  batch TEXT NOT NULL,
  at REAL NOT NULL,
  PRIMARY KEY (thread, seq)
);
CREATE INDEX IF NOT EXISTS mem_messages_batch ON mem_messages(thread, batch);
CREATE TABLE IF NOT EXISTS mem_summaries (
  thread TEXT NOT NULL,
  upto INTEGER NOT NULL,
  model TEXT NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY (thread, upto, model)
);
""",
    ),
    (
        2,
        """
INSERT INTO mem_fts(mem_fts, rank) VALUES ('rank', 'bm25(1.0, 0.0)');
""",
    ),
    (
        3,
        """
DROP TRIGGER IF EXISTS mem_items_ai;
DROP TRIGGER IF EXISTS mem_items_ad;
DROP TRIGGER IF EXISTS mem_items_au;
DROP TABLE IF EXISTS mem_fts;
""",
    ),
]
"""Migration 3 moves full text to one FTS5 table per space (``mem_fts_<space id>``, created with the space
and filled from its rows if missing): a query then never scans other spaces' postings, and deleting a space
drops its table, leaving no term behind."""

PG_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
CREATE TABLE IF NOT EXISTS mem_spaces (
  id BIGSERIAL PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  model TEXT NOT NULL,
  dim INTEGER NOT NULL,
  version BIGINT NOT NULL DEFAULT 0,
  created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS mem_items (
  id BIGSERIAL PRIMARY KEY,
  space BIGINT NOT NULL REFERENCES mem_spaces(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  doc TEXT,
  source TEXT NOT NULL DEFAULT '',
  text TEXT NOT NULL,
  metadata JSONB NOT NULL DEFAULT '{}',
  embedding vector NOT NULL,
  tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
  created_at DOUBLE PRECISION NOT NULL,
  expires_at DOUBLE PRECISION,
  UNIQUE (space, key)
);
CREATE INDEX IF NOT EXISTS mem_items_doc ON mem_items(space, doc);
CREATE INDEX IF NOT EXISTS mem_items_expiry ON mem_items(expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS mem_items_tsv ON mem_items USING gin (tsv);
CREATE TABLE IF NOT EXISTS mem_docs (
  space BIGINT NOT NULL REFERENCES mem_spaces(id) ON DELETE CASCADE,
  doc TEXT NOT NULL,
  hash TEXT NOT NULL,
  chunks INTEGER NOT NULL,
  source TEXT NOT NULL,
  updated_at DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (space, doc)
);
CREATE TABLE IF NOT EXISTS mem_staging (
  run TEXT NOT NULL,
  doc TEXT NOT NULL,
  n INTEGER NOT NULL,
  text TEXT NOT NULL,
  metadata JSONB NOT NULL,
  embedding vector,
  PRIMARY KEY (run, doc, n)
);
CREATE TABLE IF NOT EXISTS mem_cache (
  space BIGINT NOT NULL REFERENCES mem_spaces(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value BYTEA NOT NULL,
  PRIMARY KEY (space, key)
);
CREATE TABLE IF NOT EXISTS mem_messages (
  thread TEXT NOT NULL,
  seq INTEGER NOT NULL,
  role TEXT NOT NULL,
  content TEXT NOT NULL,
  tokens INTEGER NOT NULL,
  batch TEXT NOT NULL,
  at DOUBLE PRECISION NOT NULL,
  PRIMARY KEY (thread, seq)
);
CREATE INDEX IF NOT EXISTS mem_messages_batch ON mem_messages(thread, batch);
CREATE TABLE IF NOT EXISTS mem_summaries (
  thread TEXT NOT NULL,
  upto INTEGER NOT NULL,
  model TEXT NOT NULL,
  text TEXT NOT NULL,
  PRIMARY KEY (thread, upto, model)
)
""",
    ),
]
"""The PostgreSQL variant (``PostgresMemoryStore``), in the schema of the connection's ``search_path``.
Vectors are ``vector`` (pgvector) of any size; each space gets its own partial HNSW index over
``embedding::vector(dim)`` (``mem_items_hnsw_<space id>``, ``WHERE space = <id> AND vector_dims(embedding) =
<dim>``: a dead row of another size never reaches the cast), made with the space and dropped with it. Full
text is a generated ``tsvector`` (``simple`` configuration: no stemming, like the SQLite store) with a GIN
index. Every statement is idempotent: a schema emptied by ``DELETE`` from each
table migrates again."""
