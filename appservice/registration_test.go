package appservice

import (
	"strings"
	"testing"
)

// TestRegistrationLegacyNamespace: with legacy tenants configured, the
// generated registration has their namespace, not exclusive, and a
// registration without it is refused at start.
func TestRegistrationLegacyNamespace(t *testing.T) {
	cfg := testConfig()
	cfg.LegacyUsers.Tenants = []string{"t1"}
	reg, err := NewRegistration(cfg, "example.net")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ns := range reg.Namespaces.UserIDs {
		if ns.Regex == `^@[^:]+_(?:t1):example\.net$` {
			found = !ns.Exclusive
		}
	}
	if !found {
		t.Fatalf("no non-exclusive legacy namespace in %+v", reg.Namespaces.UserIDs)
	}
	if err := CheckRegistration(reg, cfg, "example.net"); err != nil {
		t.Fatal(err)
	}
	reg.Namespaces.UserIDs = reg.Namespaces.UserIDs[:1]
	if err := CheckRegistration(reg, cfg, "example.net"); err == nil || !strings.Contains(err.Error(), "legacy user namespace") {
		t.Fatalf("registration without the legacy namespace: %v", err)
	}
}
