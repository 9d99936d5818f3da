// Package typescript holds the compiled @openmeet/bridge-client module for
// the bridge to serve: the demo page (web/) imports it as it is, with no
// build step of its own. The module is built from src/ by `npm run build`
// and committed; scripts/check-clients.sh fails when it is out of date.
package typescript

import _ "embed"

// Module is dist/bridge-client.js, a self-contained ES module.
//
//go:embed dist/bridge-client.js
var Module []byte
