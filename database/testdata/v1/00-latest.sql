-- v0 -> v1: The schema at version 1, as shipped; the start of the upgrade test

-- The highest stream position handed out. One row. Every writer of the event
-- log increments it inside its transaction, which holds the row lock until
-- commit: positions therefore become visible in increasing order, also on
-- PostgreSQL with several writers.
CREATE TABLE stream_position (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT  NOT NULL
);
INSERT INTO stream_position (id, position) VALUES (1, 0);

-- Appservice transactions already applied; a repeated txn id is a no-op.
CREATE TABLE appservice_txn (
    txn_id      TEXT    PRIMARY KEY,
    received_at BIGINT  NOT NULL,
    event_count INTEGER NOT NULL
);

-- Every timeline event Synapse pushed, once, in stream order.
CREATE TABLE event_log (
    stream_pos BIGINT PRIMARY KEY,
    event_id   TEXT   NOT NULL UNIQUE,
    room_id    TEXT   NOT NULL,
    event_type TEXT   NOT NULL,
    sender     TEXT   NOT NULL,
    state_key  TEXT,
    origin_ts  BIGINT NOT NULL,
    -- The event exactly as Synapse sent it.
    event      TEXT   NOT NULL,
    txn_id     TEXT   NOT NULL,
    logged_at  BIGINT NOT NULL
);
CREATE INDEX event_log_room_idx ON event_log (room_id, stream_pos);

-- Room membership as Synapse reports it through pushed m.room.member events:
-- what the homeserver actually has, as opposed to what the bridge wants.
CREATE TABLE room_member (
    room_id    TEXT   NOT NULL,
    user_id    TEXT   NOT NULL,
    membership TEXT   NOT NULL,
    event_id   TEXT   NOT NULL,
    stream_pos BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_member_user_idx ON room_member (user_id, membership);
