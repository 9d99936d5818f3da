-- v0 -> v8: Latest revision

-- The highest stream position handed out. One row. Every writer of the event
-- log increments it inside its transaction, which holds the row lock until
-- commit: positions therefore become visible in increasing order, also on
-- PostgreSQL with several writers.
CREATE TABLE stream_position (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT  NOT NULL
);
INSERT INTO stream_position (id, position) VALUES (1, 0);

-- Appservice transactions already applied; a repeated txn id with the same
-- content is a no-op.
CREATE TABLE appservice_txn (
    txn_id      TEXT    PRIMARY KEY,
    received_at BIGINT  NOT NULL,
    event_count INTEGER NOT NULL,
    -- What the txn held (a hash of its event IDs): Synapse on SQLite
    -- reuses txn ids after a restart, so an id alone does not identify a
    -- retry.
    digest      TEXT    NOT NULL DEFAULT ''
);

-- Every timeline event Synapse pushed, once, in stream order.
CREATE TABLE event_log (
    -- only: postgres
    stream_pos   BIGINT PRIMARY KEY,
    -- On SQLite the position is the rowid: no separate index to write.
    -- only: sqlite (line commented)
--  stream_pos   INTEGER PRIMARY KEY,
    event_id     TEXT   NOT NULL UNIQUE,
    room_id      TEXT   NOT NULL,
    event_type   TEXT   NOT NULL,
    sender       TEXT   NOT NULL,
    state_key    TEXT,
    origin_ts    BIGINT NOT NULL,
    -- The event exactly as Synapse sent it.
    event        TEXT   NOT NULL,
    txn_id       TEXT   NOT NULL,
    -- only: sqlite for next 3 lines (lines commented)
--  logged_at    BIGINT NOT NULL,
--  -- The position of the room's previous logged event (see room_head).
--  prev_in_room BIGINT
    -- only: postgres
    logged_at    BIGINT NOT NULL
);
-- only: postgres
CREATE INDEX event_log_room_idx ON event_log (room_id, stream_pos);
-- A room's state event of one type and key as of a stream position (see
-- 08-safety.sql); only state events are indexed.
CREATE INDEX event_log_state_idx ON event_log (room_id, event_type, state_key, stream_pos) WHERE state_key IS NOT NULL;

-- SQLite finds a room's events by a chain instead of an index on (room_id,
-- stream_pos): room_head holds each room's newest event, and each event
-- points to the room's previous one (prev_in_room). An index written at as
-- many places as a transaction has rooms was SQLite's largest cost per
-- event (BENCHMARKS.md). The bridge sets prev_in_room of an event whose
-- room had an earlier one in the same transaction; the trigger fills it in
-- from room_head for the others (whoever inserts) and moves the head.
-- Positions only grow, so a chain only goes down. A duplicate is never
-- inserted with a chain pointing at it: the bridge leaves logged events
-- out before inserting. Pruning deletes a prefix of positions: a head
-- goes only with the room's last event.
-- only: sqlite until "end only" (lines commented)
--CREATE TABLE room_head (
--    room_id    TEXT   PRIMARY KEY,
--    stream_pos BIGINT NOT NULL,
--    origin_ts  BIGINT NOT NULL
--);
--CREATE TRIGGER event_log_chain AFTER INSERT ON event_log BEGIN
--    UPDATE event_log SET prev_in_room = (
--        SELECT stream_pos FROM room_head WHERE room_id = NEW.room_id AND stream_pos < NEW.stream_pos
--    ) WHERE stream_pos = NEW.stream_pos AND NEW.prev_in_room IS NULL;
--    INSERT INTO room_head (room_id, stream_pos, origin_ts) VALUES (NEW.room_id, NEW.stream_pos, NEW.origin_ts)
--        ON CONFLICT (room_id) DO UPDATE SET stream_pos = excluded.stream_pos, origin_ts = excluded.origin_ts
--        WHERE excluded.stream_pos > room_head.stream_pos;
--END;
--CREATE TRIGGER event_log_unchain AFTER DELETE ON event_log BEGIN
--    DELETE FROM room_head WHERE room_id = OLD.room_id AND stream_pos = OLD.stream_pos;
--END;
-- end only sqlite

-- Room membership as Synapse reports it through pushed m.room.member events:
-- what the homeserver actually has, as opposed to what the bridge wants.
CREATE TABLE room_member (
    room_id    TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    membership TEXT   NOT NULL,
    -- From the member event, so a stream can name a sender without a lookup.
    displayname TEXT  NOT NULL DEFAULT '',
    event_id   TEXT   NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_member_user_idx ON room_member (user_id, membership);

-- OpenMeet users. The row is the desired profile; *_applied say what was
-- last set on the homeserver, so only changes are sent.
CREATE TABLE ghost (
    tenant              TEXT    NOT NULL,
    slug                TEXT    NOT NULL,
    user_id             TEXT    NOT NULL UNIQUE,
    displayname         TEXT    NOT NULL,
    -- What the backend gave: an mxc:// URI or an https URL.
    avatar_source       TEXT    NOT NULL DEFAULT '',
    -- The mxc:// URI of the avatar (uploaded from avatar_source if needed).
    avatar_mxc          TEXT    NOT NULL DEFAULT '',
    registered          BOOLEAN NOT NULL DEFAULT false,
    displayname_applied TEXT,
    avatar_applied      TEXT,
    last_error          TEXT    NOT NULL DEFAULT '',
    updated_at          BIGINT  NOT NULL,
    PRIMARY KEY (tenant, slug)
);

-- OpenMeet events and groups. The row is the desired state of the room;
-- desired_version grows on every change and synced_version says up to
-- which change the homeserver matches.
CREATE TABLE portal (
    tenant          TEXT    NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('event', 'group')),
    slug            TEXT    NOT NULL,
    alias           TEXT    NOT NULL UNIQUE,
    room_id         TEXT    UNIQUE,
    name            TEXT    NOT NULL,
    topic           TEXT    NOT NULL DEFAULT '',
    visibility      TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    closed          BOOLEAN NOT NULL DEFAULT false,
    -- The room is made when it has members, or once someone asked for it.
    room_requested  BOOLEAN NOT NULL DEFAULT false,
    desired_version BIGINT  NOT NULL DEFAULT 1,
    synced_version  BIGINT  NOT NULL DEFAULT 0,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL,
    PRIMARY KEY (tenant, kind, slug)
);

-- Who should be in a portal's room, with which role.
CREATE TABLE portal_member (
    tenant    TEXT   NOT NULL,
    kind      TEXT   NOT NULL,
    slug      TEXT   NOT NULL,
    user_slug TEXT   NOT NULL,
    role      TEXT   NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, slug, user_slug),
    FOREIGN KEY (tenant, kind, slug) REFERENCES portal (tenant, kind, slug) ON DELETE CASCADE,
    FOREIGN KEY (tenant, user_slug) REFERENCES ghost (tenant, slug) ON DELETE CASCADE
);
CREATE INDEX portal_member_user_idx ON portal_member (tenant, user_slug);

-- Small durable values of the bot, such as how far in the event log it has
-- read commands.
CREATE TABLE bot_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Rooms where someone talks to the bot directly; commands need no prefix.
CREATE TABLE management_room (
    room_id    TEXT   PRIMARY KEY,
    user_id    TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- Messages accepted from the client API, waiting for or delivered to the
-- homeserver. (user_id, txn_id) makes a retried send a no-op. Each
-- (user_id, room_id) is one queue: only its oldest pending entry (the head)
-- may be claimed, so messages arrive in the order they were accepted.
CREATE TABLE outbox (
    -- only: postgres
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    -- only: sqlite (line commented)
--  id              INTEGER PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    room_id         TEXT    NOT NULL,
    txn_id          TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    content         TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    event_id        TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    claimed_until   BIGINT  NOT NULL DEFAULT 0,
    -- Every claim gives the entry a new token; a worker's result is written
    -- only while its token is still the entry's.
    claim_token     BIGINT  NOT NULL DEFAULT 0,
    -- Set before each send: the homeserver may have the message even though
    -- no answer came back, so it is looked for before sending again.
    maybe_sent      BOOLEAN NOT NULL DEFAULT false,
    last_error      TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,
    -- The txn id the entry is sent to the homeserver with, chosen at
    -- random when the entry is made: never reused, also after an entry was
    -- dropped or a backup restored.
    hs_txn_id       TEXT    NOT NULL DEFAULT '',
    -- A hash of what the client asked for (action, room, body): the same
    -- client txn id with another request is refused, never answered with
    -- this entry's result.
    request_digest  TEXT    NOT NULL DEFAULT '',
    UNIQUE (user_id, txn_id)
);
CREATE INDEX outbox_due_idx ON outbox (state, next_attempt_at);
CREATE INDEX outbox_queue_idx ON outbox (user_id, room_id, state, id);
-- Each user's waiting entries, counted before a send is accepted
-- (client_api.limits.max_pending_outbox).
CREATE INDEX outbox_user_pending_idx ON outbox (user_id) WHERE state = 'pending';

-- Single-use tickets for EventSource, which cannot send headers. Only a
-- hash is stored.
CREATE TABLE stream_ticket (
    ticket_hash TEXT   PRIMARY KEY,
    tenant      TEXT   NOT NULL,
    user_slug   TEXT   NOT NULL,
    expires_at  BIGINT NOT NULL
);

-- How far each user has read each room through the client API, as a
-- stream position: unread counts are the messages after it.
CREATE TABLE read_marker (
    user_id    TEXT   NOT NULL,
    room_id    TEXT   NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);

-- Files accepted through the client API while Synapse was unreachable, kept
-- in chunks until the outbox sends their message: then the file is uploaded
-- as the user's ghost, the message's content gets its mxc URI, and the
-- rows go. (user_id, txn_id) is the outbox entry of the message.
CREATE TABLE media_spool (
    -- only: postgres
    id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    -- only: sqlite (line commented)
--  id         INTEGER PRIMARY KEY,
    user_id    TEXT    NOT NULL,
    txn_id     TEXT    NOT NULL,
    media_type TEXT    NOT NULL,
    filename   TEXT    NOT NULL,
    size       BIGINT  NOT NULL,
    -- Set once every chunk is written.
    complete   BOOLEAN NOT NULL DEFAULT false,
    created_at BIGINT  NOT NULL
);
CREATE TABLE media_spool_chunk (
    spool_id BIGINT  NOT NULL REFERENCES media_spool (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    -- only: postgres
    data     BYTEA   NOT NULL,
    -- only: sqlite (line commented)
--  data     BLOB    NOT NULL,
    PRIMARY KEY (spool_id, seq)
);

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
