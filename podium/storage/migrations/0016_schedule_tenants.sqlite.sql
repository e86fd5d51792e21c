-- A schedule's runs start in its tenant; a claimed occurrence keeps the tenant until its run is started.
ALTER TABLE schedules ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE schedule_fires ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
