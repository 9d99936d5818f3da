package bridge

import (
	"context"
	"encoding/json"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge/commands"
	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/sse"
)

// eventSink hands what Synapse pushed on to the parts of the bridge that
// read it. Consumers read the event log themselves; the sink only wakes
// them, so a slow consumer never holds up Synapse.
type eventSink struct {
	commands *commands.Processor
	hub      *sse.Hub // nil when the client API is off
}

var _ appservice.EventSink = (*eventSink)(nil)

func (s *eventSink) EventsLogged(ctx context.Context, events []*database.LoggedEvent) {
	s.commands.Wake()
	if s.hub != nil {
		s.hub.Wake()
	}
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
