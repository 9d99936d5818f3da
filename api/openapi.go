package api

import (
	_ "embed"
	"net/http"
)

// OpenAPI is the description of the provisioning and client APIs, served
// at /_openmeet/openapi.yaml so the backend and frontend teams can generate
// clients from it.
//
//go:embed openapi.yaml
var OpenAPI []byte

// ServeOpenAPI serves the description.
func ServeOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(OpenAPI)
}
