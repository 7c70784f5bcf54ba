-- A camera table in the style of lightNVR's `streams` (an NVR that keeps its cameras in
-- SQLite). camsync reads it in place, read-only; see camsync.yaml beside this file.
--
--   sqlite3 nvr.db < schema.sql && sqlite3 nvr.db < sample.sql
--
-- The NVR owns this database. camsync never writes to it and never holds a lock the NVR
-- waits on for more than one short read.

PRAGMA journal_mode = WAL;  -- readers never block the NVR's writes (rollback journals work too)

CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    -- The main stream; lightNVR keeps the camera's credentials in it
    -- (rtsp://user:password@host/...). camsync takes them out and never logs them.
    url TEXT NOT NULL,
    enabled INTEGER DEFAULT 1,
    width INTEGER DEFAULT 1280,
    height INTEGER DEFAULT 720,
    fps INTEGER DEFAULT 30,
    codec TEXT DEFAULT 'h264',
    -- 1: record continuously (camsync profile `recording`); 0: live view only (`viewing`).
    record INTEGER DEFAULT 1,
    -- An optional low-resolution stream for grid views; '' when the camera has none.
    sub_stream_url TEXT DEFAULT ''
);
