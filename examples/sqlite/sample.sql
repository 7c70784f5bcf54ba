-- Three sample cameras (documentation addresses: nothing answers there).
INSERT INTO streams (name, url, record, sub_stream_url) VALUES
    ('front_door', 'rtsp://admin:front-secret@192.0.2.10:554/stream1', 1,
     'rtsp://admin:front-secret@192.0.2.10:554/stream2'),
    ('garage', 'rtsp://admin:garage-secret@192.0.2.11:554/live', 0, ''),
    ('backyard', 'rtsp://192.0.2.12:554/h264', 1, '');
