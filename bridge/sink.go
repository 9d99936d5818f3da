package bridge

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge/commands"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// eventSink hands what Synapse pushed on to the parts of the bridge that
// read it. The events of a committed transaction are handed to the bot and
// the stream hub in process, so they need not read them back from the log;
// handing never blocks, so a slow consumer never holds up Synapse (one
// that falls behind reads the log instead).
type eventSink struct {
	commands *commands.Processor
	hub      *sse.Hub // nil when the client API is off
}

var _ appservice.EventSink = (*eventSink)(nil)

func (s *eventSink) EventsLogged(ctx context.Context, events []*database.LoggedEvent) {
	s.commands.Logged(events)
	if s.hub != nil {
		s.hub.Logged(events, receivedAt(ctx))
	}
}

type receivedKey struct{}

// receivedAt is when the request of ctx arrived (see stampReceived); zero
// when not stamped.
func receivedAt(ctx context.Context) time.Time {
	t, _ := ctx.Value(receivedKey{}).(time.Time)
	return t
}

// stampReceived notes in the context of each request of Synapse's that
// pushes a transaction when it arrived (its headers were read), the start
// of openmeet_stream_delivery_seconds.
func stampReceived(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/transactions/") {
			r = r.WithContext(context.WithValue(r.Context(), receivedKey{}, time.Now()))
		}
		next.ServeHTTP(w, r)
	})
}

// EphemeralReceived passes typing and receipts of rooms on to the streams;
// they are best effort and never logged.
func (s *eventSink) EphemeralReceived(ctx context.Context, events []*appservice.Ephemeral) {
	if s.hub == nil {
		return
	}
	for _, evt := range events {
		if evt.RoomID == "" || (evt.Type != "m.typing" && evt.Type != "m.receipt") {
			continue
		}
		raw, err := json.Marshal(evt)
		if err != nil {
			continue
		}
		s.hub.PublishEphemeral(ctx, evt.RoomID, evt.Type, raw)
	}
}
