-- Queues: every run belongs to its flow's queue ("default" unless @podium.flow(queue=...)); a queue may be
-- capped across all workers ([queues] in podium.toml), counted over the runs holding a live lease.
ALTER TABLE runs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
CREATE INDEX runs_running_queue ON runs (queue) WHERE status = 'running';
