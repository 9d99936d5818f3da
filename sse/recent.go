package sse

import "maunium.net/go/mautrix/id"

// recentMemberEvents is how many of the newest member events the hub
// keeps. A new stream whose snapshot is at most that many member events
// behind the hub catches up from memory, under the hub's lock, without a
// read of the database there; a mass join larger than that during its
// read of the log sends it to read again.
const recentMemberEvents = 4096

// memberChange is one member event the hub handed out.
type memberChange struct {
	pos  int64
	room id.RoomID
	user id.UserID
	join bool
}

// recentMembers is a ring of the newest member events handed out, in
// position order. Guarded by the hub's lock.
type recentMembers struct {
	// size is the ring's capacity (recentMemberEvents; tests make it
	// smaller).
	size int
	ring []memberChange
	next int
	// after: every member event handed out after this position is in
	// the ring.
	after int64
}

// reset empties the ring: the hub follows the log from position start.
func (r *recentMembers) reset(start int64) {
	r.ring, r.next, r.after = r.ring[:0], 0, start
}

func (r *recentMembers) add(c memberChange) {
	if len(r.ring) < r.size {
		r.ring = append(r.ring, c)
		return
	}
	r.after = max(r.after, r.ring[r.next].pos)
	r.ring[r.next] = c
	r.next = (r.next + 1) % r.size
}

// covers reports whether the ring holds every member event handed out
// after position pos.
func (r *recentMembers) covers(pos int64) bool { return pos >= r.after }

// apply applies to rooms userID's own member events after position after,
// up to upTo, in order.
func (r *recentMembers) apply(userID id.UserID, rooms map[id.RoomID]struct{}, after, upTo int64) {
	for i := range r.ring {
		c := r.ring[(r.next+i)%len(r.ring)]
		if c.user != userID || c.pos <= after || c.pos > upTo {
			continue
		}
		if c.join {
			rooms[c.room] = struct{}{}
		} else {
			delete(rooms, c.room)
		}
	}
}
