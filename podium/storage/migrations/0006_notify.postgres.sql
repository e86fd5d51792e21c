-- Wake listening workers (LISTEN/NOTIFY) as soon as a run becomes runnable, in the transaction that made it
-- so: a run created or released (pending), an inbox event or a child's end (waiting -> pending), a suspend
-- with a timer (waiting with wake_at: other workers recompute when to look next). One channel per schema,
-- 'podium:<schema>' cut to 63 bytes; the payload is the run's flow. NOTIFY folds identical notifications of
-- one transaction into one, and delivers nothing if the transaction rolls back.
CREATE FUNCTION podium_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(left('podium:' || TG_TABLE_SCHEMA, 63), NEW.flow);
    RETURN NULL;
END
$$;

CREATE TRIGGER runs_notify AFTER INSERT OR UPDATE ON runs FOR EACH ROW
    WHEN (NEW.status = 'pending' OR (NEW.status = 'waiting' AND NEW.wake_at IS NOT NULL))
    EXECUTE FUNCTION podium_notify();
