-- A camera table for camsync's Postgres source, with the trigger that tells camsync about
-- every change (see camsync.yaml beside this file).
--
--   psql "$DATABASE_URL" -f schema.sql

CREATE TABLE IF NOT EXISTS cameras (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,         -- the stream name on every server
    url         text NOT NULL,                -- the main source
    url_backup  text,                         -- an optional second source (go2rtc only)
    username    text,
    password    text,
    profile     text NOT NULL DEFAULT 'viewing',
    enabled     boolean NOT NULL DEFAULT true,
    targets     text[],                       -- NULL: every target
    mediamtx    jsonb,                        -- raw MediaMTX path fields, e.g. {"maxReaders": 4}
    site        text                          -- not a camsync field: lets a query pick a share
);

-- One notification per statement (not per row): a bulk import of 10,000 rows costs camsync one
-- re-read. The channel name must match `listen:` in camsync.yaml exactly.
CREATE OR REPLACE FUNCTION cameras_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cameras_changed', TG_OP);
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS cameras_notify ON cameras;
CREATE TRIGGER cameras_notify
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON cameras
    FOR EACH STATEMENT EXECUTE FUNCTION cameras_notify();

-- camsync only reads. A role that can do nothing else:
--   CREATE ROLE camsync LOGIN PASSWORD '…';
--   GRANT USAGE ON SCHEMA public TO camsync;
--   GRANT SELECT ON cameras TO camsync;
