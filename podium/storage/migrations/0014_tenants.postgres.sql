-- Tenants: every run belongs to one (child runs inherit it); an API key acts in one tenant (NULL: all
-- tenants, a platform key) and may expire.
ALTER TABLE runs ADD COLUMN tenant TEXT COLLATE "C" NOT NULL DEFAULT 'default';
CREATE INDEX runs_tenant ON runs (tenant, created_at);
ALTER TABLE api_keys ADD COLUMN tenant TEXT COLLATE "C";
ALTER TABLE api_keys ADD COLUMN expires_at DOUBLE PRECISION;
