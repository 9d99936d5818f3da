-- v4 -> v5: Outbox: one ordered queue per user and room, fenced claims
-- No "compatible with" clause: a bridge of v4 would claim entries without
-- the head-of-queue rule and write results without the claim token, so it
-- must not start on this database.

-- Every claim gives the entry a new token; a worker's result is written
-- only while its token is still the entry's, so a worker whose claim
-- expired and was taken over cannot overwrite the new holder's result.
ALTER TABLE outbox ADD COLUMN claim_token BIGINT NOT NULL DEFAULT 0;

-- Set before each send: the homeserver may have the message even though
-- no answer came back. Before sending such an entry again, the bridge
-- looks for it in the room.
ALTER TABLE outbox ADD COLUMN maybe_sent BOOLEAN NOT NULL DEFAULT false;

-- Entries v4 tried without settling them, or claimed without handing them
-- back (it may have stopped in the middle of a send), may have reached the
-- homeserver.
UPDATE outbox SET maybe_sent = true WHERE state <> 'sent' AND (attempts > 0 OR claimed_until > 0);

-- Each (user, room) queue is read oldest first to find its head.
CREATE INDEX outbox_queue_idx ON outbox (user_id, room_id, state, id);
