-- Three sample cameras (documentation addresses: nothing answers there).
INSERT INTO cameras (name, url, url_backup, username, password, profile, targets, mediamtx) VALUES
    ('front_door', 'rtsp://192.0.2.10:554/stream1', 'rtsp://192.0.2.10:554/stream2',
     'admin', 'front-secret', 'recording', NULL, '{"maxReaders": 4}'),
    ('garage', 'rtsp://192.0.2.11:554/live', NULL, 'admin', 'garage-secret', 'viewing',
     '{go2rtc}', NULL),
    ('backyard', 'rtsp://192.0.2.12:554/h264', NULL, NULL, NULL, 'snapshot', NULL, NULL);
