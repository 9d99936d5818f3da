package database

import (
	"bytes"
	"context"
	"fmt"
	"slices"
)

// appendTxnPostgres is the whole write of a transaction on PostgreSQL in one
// statement, so that a transaction costs one round trip (and its commit)
// instead of one per step: the txn id row (no row back when the same txn
// was applied before), the position reservation (only for a new txn; its
// row lock orders the writers' commits as on SQLite), the events (skipping
// ids already logged), the member rows from the member events written (the
// newest per user and room), and the NOTIFY that wakes the other replicas
// (PostgreSQL delivers it at commit, when the rows are visible), carrying
// the last position reserved: writers commit in position order, so the log
// then has every row up to it (see ListenPositions). The events come as
// arrays, so the text of the statement is the same whatever their number
// and pgx keeps it prepared.
//
// Each row of the answer is a kind and a value: 0 and the position of an
// event written, 1 and the position before the first reserved, 2 when the
// txn is new, 3 when the others were notified.
const appendTxnPostgres = appendTxnHead + appendTxnTail

// appendTxnPostgresMedia is appendTxnPostgres for a transaction whose
// events name files or redact: the files go to media_ref, and the
// references of the events the redactions name go (mediaChanges leaves
// out the files of events redacted in the same transaction: the delete
// does not see the statement's own inserts); both only for events
// written, as with the member rows. A statement of its own, so that the
// transactions without (nearly all) cost what they cost before
// (BenchmarkAppendTransaction/postgres/2: +15% with the media steps
// always in).
const appendTxnPostgresMedia = appendTxnHead + appendTxnMedia + appendTxnTail

const appendTxnHead = `
	WITH txn AS (
		INSERT INTO appservice_txn (txn_id, received_at, event_count, digest) VALUES ($1, $2, $3::integer, $4)
		ON CONFLICT (txn_id) DO UPDATE SET
			received_at = excluded.received_at, event_count = excluded.event_count, digest = excluded.digest
		WHERE appservice_txn.digest <> excluded.digest
		RETURNING 1
	), reserved AS (
		UPDATE stream_position SET position = position + $3::integer
		WHERE id = 1 AND $3::integer > 0 AND EXISTS (SELECT FROM txn)
		RETURNING position - $3::integer AS base
	), input AS (
		SELECT * FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], $11::text[], $12::text[], $13::text[])
			WITH ORDINALITY AS e(event_id, room_id, event_type, sender, state_key, origin_ts, event, membership, displayname, ord)
	), logged AS (
		INSERT INTO event_log (txn_id, logged_at, stream_pos, event_id, room_id, event_type, sender, state_key, origin_ts, event)
		SELECT $1, $2, reserved.base + input.ord, input.event_id, input.room_id, input.event_type, input.sender,
			input.state_key, input.origin_ts, input.event
		FROM reserved, input
		ON CONFLICT (event_id) DO NOTHING
		RETURNING stream_pos
	), members AS (
		INSERT INTO room_member (room_id, user_id, membership, displayname, event_id, stream_pos)
		SELECT DISTINCT ON (input.room_id, input.state_key)
			input.room_id, input.state_key, input.membership, input.displayname, input.event_id, logged.stream_pos
		FROM logged, reserved, input
		WHERE input.ord = logged.stream_pos - reserved.base AND input.membership IS NOT NULL AND input.state_key IS NOT NULL
		ORDER BY input.room_id, input.state_key, logged.stream_pos DESC
		ON CONFLICT (room_id, user_id) DO UPDATE
			SET membership = excluded.membership, displayname = excluded.displayname,
				event_id = excluded.event_id, stream_pos = excluded.stream_pos
			WHERE excluded.stream_pos > room_member.stream_pos
	)`

const appendTxnMedia = `, refs AS (
		INSERT INTO media_ref (mxc, room_id, event_id, stream_pos)
		SELECT r.mxc, input.room_id, input.event_id, logged.stream_pos
		FROM unnest($14::text[], $15::bigint[]) AS r(mxc, ord)
		JOIN input ON input.ord = r.ord
		JOIN reserved ON true
		JOIN logged ON logged.stream_pos = reserved.base + r.ord
		ON CONFLICT DO NOTHING
	), unref AS (
		DELETE FROM media_ref
		USING unnest($16::text[], $17::bigint[]) AS d(redacts, ord), input, reserved, logged
		WHERE input.ord = d.ord AND logged.stream_pos = reserved.base + d.ord
			AND media_ref.event_id = d.redacts AND media_ref.room_id = input.room_id
	)`

const appendTxnTail = `, notified AS (
		SELECT pg_notify('` + NotifyChannel + `', (SELECT base + $3::integer FROM reserved)::text)
		FROM (SELECT FROM logged LIMIT 1) AS any_logged
	)
	SELECT 0, stream_pos FROM logged
	UNION ALL SELECT 1, base FROM reserved
	UNION ALL SELECT 2, 0 FROM txn
	UNION ALL SELECT 3, 0 FROM notified`

// mayHoldEcho reports whether any of events could be the echo of an outbox
// entry; only then is more than one statement needed.
func mayHoldEcho(events []*LoggedEvent) bool {
	for _, evt := range events {
		if bytes.Contains(evt.Raw, txnIDKeyBytes) {
			return true
		}
	}
	return false
}

// appendPostgres logs a transaction with appendTxnPostgres, in the caller's
// database transaction if there is one (dbutil takes it from ctx), else in
// the statement's own.
func (q *EventLogQuery) appendPostgres(ctx context.Context, txnID, digest string, now int64, events []*LoggedEvent) ([]*LoggedEvent, error) {
	n := len(events)
	eventIDs, roomIDs, types, senders, raws := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	stateKeys, memberships, displaynames := make([]*string, n), make([]*string, n), make([]*string, n)
	originTS := make([]int64, n)
	for i, evt := range events {
		eventIDs[i], roomIDs[i], types[i], senders[i] = string(evt.EventID), string(evt.RoomID), evt.Type, string(evt.Sender)
		stateKeys[i], originTS[i], raws[i] = evt.StateKey, evt.OriginTS, string(evt.Raw)
		if evt.Membership != "" {
			membership, name := string(evt.Membership), evt.MemberDisplayname
			memberships[i], displaynames[i] = &membership, &name
		}
	}
	refs, redacted := mediaChanges(events)
	refMXCs, refOrds := make([]string, len(refs)), make([]int64, len(refs))
	for i, ref := range refs {
		refMXCs[i], refOrds[i] = ref.mxc, int64(ref.event)+1
	}
	redactedIDs, redactionOrds := make([]string, len(redacted)), make([]int64, len(redacted))
	for i, r := range redacted {
		redactedIDs[i], redactionOrds[i] = string(r.eventID), int64(r.by)+1
	}
	query, params := appendTxnPostgres, []any{txnID, now, n, digest,
		eventIDs, roomIDs, types, senders, stateKeys, originTS, raws, memberships, displaynames}
	if len(refs) > 0 || len(redacted) > 0 {
		query, params = appendTxnPostgresMedia, append(params, refMXCs, refOrds, redactedIDs, redactionOrds)
	}
	rows, err := q.db.Query(ctx, query, params...)
	if err != nil {
		return nil, fmt.Errorf("failed to log transaction: %w", err)
	}
	defer rows.Close()
	var positions []int64
	var base int64
	applied := false
	for rows.Next() {
		var kind, value int64
		if err = rows.Scan(&kind, &value); err != nil {
			return nil, fmt.Errorf("failed to read logged positions: %w", err)
		}
		switch kind {
		case 0:
			positions = append(positions, value)
		case 1:
			base = value
		case 2:
			applied = true
		}
	}
	if err = rows.Err(); err != nil {
		return nil, fmt.Errorf("failed to log transaction: %w", err)
	}
	if !applied {
		return nil, ErrDuplicateTxn
	}
	for i, evt := range events {
		evt.Position = base + int64(i) + 1
	}
	slices.Sort(positions)
	written := make([]*LoggedEvent, len(positions))
	for i, pos := range positions {
		written[i] = events[pos-base-1]
	}
	return written, nil
}
