package database

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// The places in an event's content that name a file, as gjson paths: a
// message's file and thumbnail (plain or encrypted), the same in an
// edit's new content, and an avatar (m.room.avatar's url, m.room.member's
// avatar_url). Migration 8 backfills media_ref from the same places.
var mediaRefPaths = []string{
	"url",
	"file.url",
	"info.thumbnail_url",
	"info.thumbnail_file.url",
	`m\.new_content.url`,
	`m\.new_content.file.url`,
	`m\.new_content.info.thumbnail_url`,
	`m\.new_content.info.thumbnail_file.url`,
	"avatar_url",
}

var (
	mxcPrefix      = []byte("mxc://")
	redactsPaths   = []string{"redacts", "content.redacts"}
	maxMXCPartSize = 255
)

// ValidMXCPart reports whether s can be the server name or media ID of an
// mxc URI the bridge serves: 1 to 255 of [A-Za-z0-9._:[]-] (media IDs are
// [A-Za-z0-9_-] in the spec, server names host[:port]). A loop, not a
// regexp: every media URL of every stream payload passes here
// (media.ValidPart).
func ValidMXCPart(s string) bool {
	if len(s) == 0 || len(s) > maxMXCPartSize {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '_', c == ':', c == '[', c == ']', c == '-':
		default:
			return false
		}
	}
	return true
}

// validMXC reports whether s is mxc://server/id with both parts valid.
func validMXC(s string) bool {
	rest, ok := strings.CutPrefix(s, "mxc://")
	if !ok {
		return false
	}
	server, mediaID, ok := strings.Cut(rest, "/")
	return ok && ValidMXCPart(server) && ValidMXCPart(mediaID)
}

// mediaRefsOf returns the well-formed mxc URIs evt names in the places of
// mediaRefPaths, each once. An event without "mxc://" anywhere (nearly
// every message) costs one byte search.
func mediaRefsOf(evt *LoggedEvent) []string {
	if !bytes.Contains(evt.Raw, mxcPrefix) {
		return nil
	}
	var refs []string
	content := gjson.GetBytes(evt.Raw, "content")
	if !content.IsObject() {
		return nil
	}
	for _, path := range mediaRefPaths {
		v := content.Get(path)
		if v.Type == gjson.String && validMXC(v.Str) && !containsString(refs, v.Str) {
			refs = append(refs, v.Str)
		}
	}
	return refs
}

// redactedBy returns the event IDs a redaction names: redacts at the top
// level (room versions up to 10) and in content (11 and later). Both
// count, so that neither can keep a file served.
func redactedBy(evt *LoggedEvent) []id.EventID {
	if evt.Type != event.EventRedaction.Type {
		return nil
	}
	var ids []id.EventID
	for _, v := range gjson.GetManyBytes(evt.Raw, redactsPaths...) {
		if v.Type == gjson.String && v.Str != "" && (len(ids) == 0 || ids[0] != id.EventID(v.Str)) {
			ids = append(ids, id.EventID(v.Str))
		}
	}
	return ids
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// mediaRef is a file named by events[event] of a transaction.
type mediaRef struct {
	mxc   string
	event int
}

// redactionOf is what events[by] of a transaction redacts: an event of
// its own room. A redaction naming an event of another room removes
// nothing there.
type redactionOf struct {
	roomID  id.RoomID
	eventID id.EventID
	by      int
}

// mediaChanges are the media_ref rows the events of a transaction add, and
// the events whose rows their redactions remove. The files of an event
// redacted in the same transaction are not added at all: on PostgreSQL
// the writes are one statement, whose delete does not see its inserts.
func mediaChanges(events []*LoggedEvent) (refs []mediaRef, redacted []redactionOf) {
	for i, evt := range events {
		for _, target := range redactedBy(evt) {
			redacted = append(redacted, redactionOf{evt.RoomID, target, i})
		}
	}
	for i, evt := range events {
		mxcs := mediaRefsOf(evt)
		if len(mxcs) == 0 || redactedIn(redacted, evt) {
			continue
		}
		for _, mxc := range mxcs {
			refs = append(refs, mediaRef{mxc, i})
		}
	}
	return refs, redacted
}

func redactedIn(redacted []redactionOf, evt *LoggedEvent) bool {
	for _, r := range redacted {
		if r.eventID == evt.EventID && r.roomID == evt.RoomID {
			return true
		}
	}
	return false
}

const (
	// The rows come as one JSON array of [mxc, room, event, position]: one
	// statement whatever their number, whose text stays prepared. "WHERE
	// true" lets SQLite parse the upsert.
	insertMediaRefsQuerySQLite = `
		INSERT INTO media_ref (mxc, room_id, event_id, stream_pos)
		SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each($1) WHERE true
		ON CONFLICT DO NOTHING`
	deleteMediaRefsQuery = `DELETE FROM media_ref WHERE event_id = $1 AND room_id = $2`
	// The primary key (mxc, room_id, event_id) answers it.
	mediaReferenceQuery = `SELECT 1 FROM media_ref WHERE mxc = $1 AND room_id = $2 LIMIT 1`
)

// writeMediaChanges records the files written events name and removes
// those of the events they redact, in the caller's database transaction.
// SQLite only: on PostgreSQL appendTxnPostgres does it in its statement.
func (q *EventLogQuery) writeMediaChanges(ctx context.Context, written []*LoggedEvent) error {
	refs, redacted := mediaChanges(written)
	if len(refs) > 0 {
		rows := make([][4]any, len(refs))
		for i, ref := range refs {
			evt := written[ref.event]
			rows[i] = [4]any{ref.mxc, evt.RoomID, evt.EventID, evt.Position}
		}
		list, err := json.Marshal(rows)
		if err != nil {
			return err
		}
		if _, err = q.db.Exec(ctx, insertMediaRefsQuerySQLite, string(list)); err != nil {
			return fmt.Errorf("failed to record media references: %w", err)
		}
	}
	for _, r := range redacted {
		if _, err := q.db.Exec(ctx, deleteMediaRefsQuery, r.eventID, r.roomID); err != nil {
			return fmt.Errorf("failed to remove media references of a redacted event: %w", err)
		}
	}
	return nil
}

// ReferencesMedia reports whether an event of the room names the mxc URI
// in one of the places of mediaRefPaths and was not redacted since. The
// references outlive the pruning of the log: history older than the log
// is read from Synapse and still shows the file.
func (q *EventLogQuery) ReferencesMedia(ctx context.Context, roomID id.RoomID, mxc string) (bool, error) {
	var one int
	err := q.db.QueryRow(ctx, mediaReferenceQuery, mxc, roomID).Scan(&one)
	if _, err = nilIfNoRows(&one, err); err != nil {
		return false, err
	}
	return one == 1, nil
}
