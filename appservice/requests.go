package appservice

import (
	"net/http"
	"strings"
	"sync"
)

// requestCounter counts the bridge's requests to the homeserver by method
// and endpoint, so operators (and benchmarks) can see what the bridge
// costs Synapse.
type requestCounter struct {
	next    http.RoundTripper
	mu      sync.Mutex
	counts  map[string]int
	observe func(method, endpoint string)
}

func (c *requestCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	endpoint := endpointOf(req.URL.Path)
	c.mu.Lock()
	c.counts[req.Method+" "+endpoint]++
	c.mu.Unlock()
	if c.observe != nil {
		c.observe(req.Method, endpoint)
	}
	return c.next.RoundTrip(req)
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// endpointOf reduces a client-server API path to a low-cardinality name:
// "rooms/join", "rooms/state/m.room.power_levels", "profile/displayname",
// "register", "createRoom"…
func endpointOf(path string) string {
	rest := path
	for _, prefix := range []string{"/_matrix/client/v3/", "/_matrix/client/v1/", "/_matrix/client/r0/", "/_matrix/media/v3/"} {
		if strings.HasPrefix(rest, prefix) {
			rest = rest[len(prefix):]
			break
		}
	}
	parts := strings.Split(rest, "/")
	switch {
	case parts[0] == "rooms" && len(parts) >= 3:
		if (parts[2] == "state" || parts[2] == "send") && len(parts) >= 4 {
			return "rooms/" + parts[2] + "/" + parts[3]
		}
		return "rooms/" + parts[2]
	case parts[0] == "profile" && len(parts) >= 3:
		return "profile/" + parts[2]
	case parts[0] == "directory" && len(parts) >= 2:
		return "directory/" + parts[1]
	case parts[0] == "appservice" && len(parts) >= 3:
		return "appservice/" + parts[2]
	}
	return parts[0]
}
