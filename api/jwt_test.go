package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func pemOf(t *testing.T, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifier(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	oldSecret, newSecret := "old-secret-0123456789abcdef0123456789", "new-secret-0123456789abcdef0123456789"
	v, err := NewVerifier(JWTConfig{
		Secrets: []string{newSecret, oldSecret}, PublicKeys: []string{pemOf(t, &rsaKey.PublicKey), pemOf(t, &ecKey.PublicKey)},
		UserClaim: "sub", TenantClaim: "tenant", Issuer: "openmeet", Leeway: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(extra map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "ada", "tenant": "acme", "iss": "openmeet", "exp": now.Add(time.Hour).Unix()}
		for k, val := range extra {
			if val == nil {
				delete(c, k)
			} else {
				c[k] = val
			}
		}
		return c
	}
	tests := []struct {
		name  string
		token string
		ok    bool
	}{
		{"HS256 new secret", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(nil)), true},
		{"HS256 old secret (rotation)", sign(t, jwt.SigningMethodHS256, []byte(oldSecret), claims(nil)), true},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil)), true},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, claims(nil)), true},
		{"ES256 unknown key", sign(t, jwt.SigningMethodES256, otherEC, claims(nil)), false},
		{"HS256 unknown secret", sign(t, jwt.SigningMethodHS256, []byte("wrong-secret-0123456789abcdef01234"), claims(nil)), false},
		// An HS256 token signed with the RSA public key as the secret must
		// not verify (algorithm confusion).
		{"alg confusion", sign(t, jwt.SigningMethodHS256, []byte(pemOf(t, &rsaKey.PublicKey)), claims(nil)), false},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, []byte(newSecret), claims(nil)), false},
		{"none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), false},
		{"expired", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"exp": now.Add(-time.Minute).Unix()})), false},
		{"expired within leeway", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"exp": now.Add(-10 * time.Second).Unix()})), true},
		{"no exp", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"exp": nil})), false},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"nbf": now.Add(time.Minute).Unix()})), false},
		{"nbf within leeway", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"nbf": now.Add(10 * time.Second).Unix()})), true},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"iss": "evil"})), false},
		{"no tenant", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"tenant": nil})), false},
		{"tenant not a string", sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(map[string]any{"tenant": 5})), false},
		{"garbage", "a.b.c", false},
	}
	for _, tt := range tests {
		tenant, slug, err := v.Verify(tt.token)
		if tt.ok && (err != nil || tenant != "acme" || slug != "ada") {
			t.Errorf("%s: %q %q %v, want acme/ada", tt.name, tenant, slug, err)
		}
		if !tt.ok && (err == nil || !errors.Is(err, ErrBadToken)) {
			t.Errorf("%s: accepted (%q %q)", tt.name, tenant, slug)
		}
	}
}

func TestVerifierConfigErrors(t *testing.T) {
	t.Parallel()
	for _, cfg := range []JWTConfig{
		{UserClaim: "sub", TenantClaim: "tenant"},
		{Secrets: []string{"short"}, UserClaim: "sub", TenantClaim: "tenant"},
		{PublicKeys: []string{"not pem"}, UserClaim: "sub", TenantClaim: "tenant"},
		{Secrets: []string{"0123456789abcdef0123456789abcdef"}},
	} {
		if _, err := NewVerifier(cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}
