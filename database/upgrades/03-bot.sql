-- v2 -> v3 (compatible with v2+): Bridge bot state

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
