-- Data subjects: the person whose data a run holds (child runs inherit it), for erasure on request.
ALTER TABLE runs ADD COLUMN subject TEXT;
CREATE INDEX runs_subject ON runs (subject) WHERE subject IS NOT NULL;
