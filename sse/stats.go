package sse

// dropTooSlow is the reason a stream is cut off for falling too far
// behind (it resumes with Last-Event-ID and loses nothing).
const dropTooSlow = "too slow"

// dropRoomsChanged ends a stream whose user is now in rooms it learnt of
// without a member event (see Hub.Restart).
const dropRoomsChanged = "rooms changed"

// Stats counts, since the hub was made, the new streams refused by each
// limit and the streams cut off for being too slow: what tells operators
// a client reconnecting in a loop, or a bridge at its capacity, from
// normal use.
type Stats struct {
	// UserRate and AddressRate: refused by connect_rate_per_user and
	// connect_rate_per_address (429).
	UserRate, AddressRate uint64
	// BridgeRate: refused by the bridge-wide connect_rate (503).
	BridgeRate uint64
	// UserStreams: refused because the user had max_per_user streams
	// open (503).
	UserStreams uint64
	// CutOffSlow: streams cut off because buffer events waited for them.
	CutOffSlow uint64
	// Restarts: times the hub failed to follow the log and tried again.
	Restarts uint64
}

// Stats returns the hub's counts.
func (h *Hub) Stats() Stats {
	return Stats{
		UserRate:    h.limits.userRefused.Load(),
		AddressRate: h.limits.addressRefused.Load(),
		BridgeRate:  h.limits.bridgeRefused.Load(),
		UserStreams: h.userStreamsRefused.Load(),
		CutOffSlow:  h.cutOffSlow.Load(),
		Restarts:    h.restarts.Load(),
	}
}
