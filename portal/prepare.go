package portal

import (
	"context"
	"fmt"

	"github.com/openmeet-team/openmeet-bridge/database"
)

// Preparer makes a stored entry's content ready just before it is sent: a
// file accepted while Synapse was unreachable is uploaded then (see
// media.Service.Prepare). permanent says that retrying cannot help.
type Preparer interface {
	Prepare(ctx context.Context, entry *database.OutboxEntry) (content string, permanent bool, err error)
}

// SetPreparer sets what prepares entries before they are sent. Call it
// before Run.
func (o *Outbox) SetPreparer(p Preparer) { o.preparer = p }

// prepared is the content to send of an entry.
func (o *Outbox) prepared(ctx context.Context, entry *database.OutboxEntry) (string, error) {
	if o.preparer == nil {
		return entry.Content, nil
	}
	content, permanent, err := o.preparer.Prepare(ctx, entry)
	if err != nil && permanent {
		return "", fmt.Errorf("%w: %w", errBadEntry, err)
	}
	return content, err
}
