package commands

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

func (p *Processor) cmdOutbox(ctx context.Context, req *request) (string, error) {
	if len(req.args) == 0 || req.args[0] == "list" {
		entries, err := p.db.Outbox.Waiting(ctx, 200)
		if err != nil {
			return "", err
		}
		if len(entries) == 0 {
			return "The outbox is empty: every message has reached Synapse.", nil
		}
		lines := make([]string, 0, len(entries))
		for _, e := range entries {
			line := fmt.Sprintf("- `%d` %s from `%s` in `%s`, %s, %d attempts, queued %s ago",
				e.ID, e.EventType, e.UserID, e.RoomID, e.State, e.Attempts,
				time.Since(time.UnixMilli(e.CreatedAt)).Round(time.Second))
			if e.LastError != "" {
				line += ": " + e.LastError
			}
			lines = append(lines, line)
		}
		return page(lines, 1, "outbox list"), nil
	}
	if len(req.args) != 2 {
		return "", usageError("Say `outbox retry <id>` or `outbox drop <id>`.")
	}
	entryID, err := strconv.ParseInt(req.args[1], 10, 64)
	if err != nil {
		return "", usageError(fmt.Sprintf("`%s` is not an outbox id.", req.args[1]))
	}
	switch req.args[0] {
	case "retry":
		ok, err := p.db.Outbox.Retry(ctx, entryID)
		if err != nil {
			return "", err
		}
		if !ok {
			return fmt.Sprintf("No undelivered message `%d`.", entryID), nil
		}
		p.outbox.Wake()
		return fmt.Sprintf("Message `%d` will be sent again now.", entryID), nil
	case "drop":
		ok, err := p.db.Outbox.Drop(ctx, entryID)
		if err != nil {
			return "", err
		}
		if !ok {
			return fmt.Sprintf("No undelivered message `%d`.", entryID), nil
		}
		return fmt.Sprintf("Dropped message `%d`; it will not be sent.", entryID), nil
	}
	return "", usageError(fmt.Sprintf("Unknown outbox action `%s`.", req.args[0]))
}
