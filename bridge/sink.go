package bridge

import (
	"context"

	"github.com/openmeet-team/openmeet-bridge/appservice"
	"github.com/openmeet-team/openmeet-bridge/bridge/commands"
	"github.com/openmeet-team/openmeet-bridge/database"
)

// eventSink hands what Synapse pushed on to the parts of the bridge that
// read it. Consumers read the event log themselves; the sink only wakes
// them, so a slow consumer never holds up Synapse.
type eventSink struct {
	commands *commands.Processor
}

var _ appservice.EventSink = (*eventSink)(nil)

func (s *eventSink) EventsLogged(ctx context.Context, events []*database.LoggedEvent) {
	s.commands.Wake()
}

func (s *eventSink) EphemeralReceived(ctx context.Context, events []*appservice.Ephemeral) {}
