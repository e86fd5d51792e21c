-- Model response cache (exact match on provider, model and request).
CREATE TABLE cache (
    key        TEXT COLLATE "C" PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
