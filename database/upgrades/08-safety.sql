-- v7 -> v8: Safety: never-reused homeserver txn ids, request digests, structured media references, leases
-- No "compatible with" clause: a bridge of v7 would record no media
-- references at ingest (files it logged would be refused by this one) and
-- would derive homeserver txn ids from row ids again.

-- The txn id the entry is sent to the homeserver with, chosen at random
-- when the entry is made: never reused, also after an entry was dropped or
-- a backup restored (the homeserver's txn cache answers a reused id with
-- the old event, and the new message would never arrive).
ALTER TABLE outbox ADD COLUMN hs_txn_id TEXT NOT NULL DEFAULT '';
-- Entries made before keep the id they may already have been sent with.
UPDATE outbox SET hs_txn_id = 'om' || id;

-- A hash of what the client asked for (action, room, body): the same
-- client txn id with another request is refused, never answered with this
-- entry's result. Empty for entries made before.
ALTER TABLE outbox ADD COLUMN request_digest TEXT NOT NULL DEFAULT '';

-- Each user's waiting entries, counted before a send is accepted
-- (client_api.limits.max_pending_outbox).
CREATE INDEX outbox_user_pending_idx ON outbox (user_id) WHERE state = 'pending';

-- Each place an event names a file in a structured field (a message's url
-- or thumbnail, an edit's new content, a room or member avatar), recorded
-- at ingest. A file is served to members of a room that has a row for it.
CREATE TABLE media_ref (
    mxc        TEXT   NOT NULL,
    room_id    TEXT   NOT NULL,
    event_id   TEXT   NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (mxc, room_id, event_id)
);
CREATE INDEX media_ref_event_idx ON media_ref (event_id);

-- The references of the events already logged: well-formed mxc URIs
-- (mxc://server/id, each part 1 to 255 of [A-Za-z0-9._:[]-], as ingest
-- takes them), less those of events a logged redaction of their room
-- names.
-- only: postgres until "end only"
INSERT INTO media_ref (mxc, room_id, event_id, stream_pos)
SELECT DISTINCT r.mxc, e.room_id, e.event_id, e.stream_pos
FROM event_log e
CROSS JOIN LATERAL (VALUES
    (e.event::jsonb #>> '{content,url}'),
    (e.event::jsonb #>> '{content,file,url}'),
    (e.event::jsonb #>> '{content,info,thumbnail_url}'),
    (e.event::jsonb #>> '{content,info,thumbnail_file,url}'),
    (e.event::jsonb #>> '{content,m.new_content,url}'),
    (e.event::jsonb #>> '{content,m.new_content,file,url}'),
    (e.event::jsonb #>> '{content,m.new_content,info,thumbnail_url}'),
    (e.event::jsonb #>> '{content,m.new_content,info,thumbnail_file,url}'),
    (e.event::jsonb #>> '{content,avatar_url}')
) AS r (mxc)
WHERE r.mxc ~ '^mxc://[]A-Za-z0-9._:[-]{1,255}/[]A-Za-z0-9._:[-]{1,255}$'
ON CONFLICT DO NOTHING;
DELETE FROM media_ref m USING event_log e
WHERE e.event_type = 'm.room.redaction' AND m.room_id = e.room_id
    AND m.event_id IN (e.event::jsonb ->> 'redacts', e.event::jsonb #>> '{content,redacts}');
-- end only postgres
-- only: sqlite until "end only"
INSERT INTO media_ref (mxc, room_id, event_id, stream_pos)
SELECT DISTINCT r.value, e.room_id, e.event_id, e.stream_pos
FROM event_log e, json_each(json_array(
    json_extract(e.event, '$.content.url'),
    json_extract(e.event, '$.content.file.url'),
    json_extract(e.event, '$.content.info.thumbnail_url'),
    json_extract(e.event, '$.content.info.thumbnail_file.url'),
    json_extract(e.event, '$.content."m.new_content".url'),
    json_extract(e.event, '$.content."m.new_content".file.url'),
    json_extract(e.event, '$.content."m.new_content".info.thumbnail_url'),
    json_extract(e.event, '$.content."m.new_content".info.thumbnail_file.url'),
    json_extract(e.event, '$.content.avatar_url')
)) AS r
WHERE json_valid(e.event) AND r.type = 'text' AND r.value GLOB 'mxc://?*/?*'
    AND substr(r.value, 7) NOT GLOB '*[^]A-Za-z0-9._:[/-]*'
    AND substr(r.value, 7) NOT GLOB '*/*/*'
    AND instr(substr(r.value, 7), '/') <= 256
    AND length(r.value) - 6 - instr(substr(r.value, 7), '/') <= 255
ON CONFLICT DO NOTHING;
DELETE FROM media_ref WHERE (event_id, room_id) IN (
    SELECT json_extract(event, '$.redacts'), room_id FROM event_log
    WHERE event_type = 'm.room.redaction' AND json_valid(event)
    UNION ALL
    SELECT json_extract(event, '$.content.redacts'), room_id FROM event_log
    WHERE event_type = 'm.room.redaction' AND json_valid(event)
);
-- end only sqlite

-- Jobs only one replica may do at a time (the bot, the janitor, a portal's
-- queue). token grows at every change of holder: what a holder writes
-- under its lease carries the token and is refused once another holder
-- took over (fencing), unlike a session lock whose loss the holder cannot
-- see.
CREATE TABLE lease (
    name       TEXT   PRIMARY KEY,
    holder     TEXT   NOT NULL,
    token      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- A room's state event of one type and key as of a stream position (a
-- resumed stream shows a user only what their membership and the room's
-- history visibility let them see at each position). Only state events are
-- indexed: messages, the bulk of the log, cost no write here.
CREATE INDEX event_log_state_idx ON event_log (room_id, event_type, state_key, stream_pos) WHERE state_key IS NOT NULL;
