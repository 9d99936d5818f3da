package media

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/tidwall/gjson"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// SpoolKey is the content key naming the spooled file of a message that
// waits in the outbox for Synapse; it is replaced by the file's mxc URI
// before the message is sent.
const SpoolKey = "net.openmeet.spool_id"

// spoolChunk is the size of one stored chunk: what is held in memory at a
// time while a file is spooled or sent on.
const spoolChunk = 256 << 10

// spoolKeep is how long a spooled file outlives its message (sent, failed,
// dropped, or never stored because the upload broke off) before it is
// deleted.
const spoolKeep = time.Hour

// Spool keeps a file in the database, in chunks, while Synapse is
// unreachable, and returns the content of its message, which names the
// spooled file instead of an mxc URI (see Prepare). Call Check first. On
// any error nothing is kept.
func (s *Service) Spool(ctx context.Context, userID id.UserID, txnID string, body io.Reader, size int64, mediaType, filename string) (map[string]any, error) {
	prefix, info, err := readHead(body, size, mediaType)
	if err != nil {
		return nil, err
	}
	if n, err := s.DB.MediaSpool.Prune(ctx, time.Now().Add(-spoolKeep)); err != nil {
		return nil, err
	} else if n > 0 {
		zerolog.Ctx(ctx).Info().Int64("files", n).Msg("Deleted spooled files whose message no longer waits")
	}
	filename = CleanFilename(filename, mediaType)
	spoolID, err := s.DB.MediaSpool.Create(ctx, &database.SpoolFile{UserID: userID, TxnID: txnID, MediaType: mediaType, Filename: filename, Size: size})
	if err != nil {
		return nil, err
	}
	if err := s.writeChunks(ctx, spoolID, io.MultiReader(bytes.NewReader(prefix), body), size); err != nil {
		// A new context: the request's may be what ended.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if delErr := s.DB.MediaSpool.Delete(cleanup, spoolID); delErr != nil {
			zerolog.Ctx(ctx).Err(delErr).Int64("spool_id", spoolID).Msg("Failed to delete a broken-off spooled file; pruned later")
		}
		return nil, err
	}
	content, err := messageContent(mediaType, filename, "", info)
	if err != nil {
		return nil, err
	}
	delete(content, "url")
	content[SpoolKey] = spoolID
	return content, nil
}

func (s *Service) writeChunks(ctx context.Context, spoolID int64, r io.Reader, size int64) error {
	buf := make([]byte, spoolChunk)
	var written int64
	for seq := 0; written < size; seq++ {
		n, err := io.ReadFull(r, buf[:min(int64(spoolChunk), size-written)])
		if err != nil {
			return fmt.Errorf("%w: %w", ErrTruncated, err)
		}
		if err := s.DB.MediaSpool.AddChunk(ctx, spoolID, seq, buf[:n]); err != nil {
			return err
		}
		written += int64(n)
	}
	return s.DB.MediaSpool.Complete(ctx, spoolID)
}

// errSpoolGone is a message whose spooled file is no longer there (the
// entry was dropped and pruned, or its upload never completed).
var errSpoolGone = errors.New("the message's file is no longer in the spool")

// Prepare makes the content of an outbox entry ready to send: a message
// whose file waits in the spool gets it uploaded to Synapse as the user's
// ghost, streamed from the database chunk by chunk. The entry's stored
// content then names the mxc URI, and the spooled file is deleted, so a
// later attempt does not upload it again. Anything else is returned as it
// is. permanent says that retrying cannot help.
func (s *Service) Prepare(ctx context.Context, entry *database.OutboxEntry) (content string, permanent bool, err error) {
	spoolID := gjson.Get(entry.Content, strings.ReplaceAll(SpoolKey, ".", `\.`))
	if !spoolID.Exists() || entry.EventType != event.EventMessage.Type {
		return entry.Content, false, nil
	}
	f, err := s.DB.MediaSpool.Get(ctx, spoolID.Int())
	if err != nil {
		return "", false, err
	}
	if f == nil || !f.Complete || f.UserID != entry.UserID {
		return "", true, errSpoolGone
	}
	if err := s.Register(ctx, entry.UserID); err != nil {
		return "", false, err
	}
	mxc, err := s.Repo.Upload(ctx, entry.UserID, &spoolReader{ctx: ctx, q: s.DB.MediaSpool, id: f.ID}, f.Size, f.MediaType, f.Filename)
	if err != nil {
		status := StatusOf(err)
		return "", status >= 400 && status < 500 && status != http.StatusTooManyRequests, fmt.Errorf("failed to upload the spooled file: %w", err)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(entry.Content), &fields); err != nil {
		return "", true, err
	}
	info := &event.FileInfo{}
	if raw, err := json.Marshal(fields["info"]); err == nil {
		_ = json.Unmarshal(raw, info)
	}
	if strings.HasPrefix(f.MediaType, "image/") && (info.Width > thumbWidth || info.Height > thumbHeight) {
		if s.thumbnail(ctx, entry.UserID, mxc, info) != "" {
			fields["info"] = info
		}
	}
	delete(fields, SpoolKey)
	fields["url"] = mxc
	raw, err := json.Marshal(fields)
	if err != nil {
		return "", true, err
	}
	if err := s.DB.Outbox.SetContent(ctx, entry, string(raw)); err != nil {
		return "", false, err
	}
	if err := s.DB.MediaSpool.Delete(ctx, f.ID); err != nil {
		zerolog.Ctx(ctx).Warn().Err(err).Int64("spool_id", f.ID).Msg("Failed to delete a sent spooled file; pruned later")
	}
	return string(raw), false, nil
}

// spoolReader reads a spooled file's chunks in order.
type spoolReader struct {
	ctx  context.Context
	q    *database.MediaSpoolQuery
	id   int64
	seq  int
	buf  []byte
	done bool
}

func (r *spoolReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, io.EOF
		}
		chunk, err := r.q.Chunk(r.ctx, r.id, r.seq)
		if err != nil {
			return 0, err
		}
		if chunk == nil {
			r.done = true
			continue
		}
		r.buf, r.seq = chunk, r.seq+1
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
