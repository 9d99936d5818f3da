package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
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
	return signWithHeader(t, method, key, claims, nil)
}

func signWithHeader(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	token := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(token.Header, k)
		} else {
			token.Header[k] = v
		}
	}
	s, err := token.SignedString(key)
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
		UserClaim: "sub", TenantClaim: "tenant", Issuer: "openmeet", Audience: "openmeet-bridge", Leeway: 30 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(extra map[string]any) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "ada", "tenant": "acme", "iss": "openmeet", "aud": "openmeet-bridge", "exp": now.Add(time.Hour).Unix()}
		for k, val := range extra {
			if val == nil {
				delete(c, k)
			} else {
				c[k] = val
			}
		}
		return c
	}
	hs := func(extra map[string]any) string {
		return sign(t, jwt.SigningMethodHS256, []byte(newSecret), claims(extra))
	}
	typed := func(header map[string]any) string {
		return signWithHeader(t, jwt.SigningMethodHS256, []byte(newSecret), claims(nil), header)
	}
	tests := []struct {
		name   string
		token  string
		reason string // "" when the token is good
	}{
		{"HS256 new secret", hs(nil), ""},
		{"HS256 old secret (rotation)", sign(t, jwt.SigningMethodHS256, []byte(oldSecret), claims(nil)), ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil)), ""},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, claims(nil)), ""},
		{"ES256 unknown key", sign(t, jwt.SigningMethodES256, otherEC, claims(nil)), "bad signature"},
		{"HS256 unknown secret", sign(t, jwt.SigningMethodHS256, []byte("wrong-secret-0123456789abcdef01234"), claims(nil)), "bad signature"},
		// An HS256 token signed with the RSA public key as the secret must
		// not verify (algorithm confusion).
		{"alg confusion", sign(t, jwt.SigningMethodHS256, []byte(pemOf(t, &rsaKey.PublicKey)), claims(nil)), "bad signature"},
		{"HS512 not allowed", sign(t, jwt.SigningMethodHS512, []byte(newSecret), claims(nil)), "algorithm not accepted"},
		{"none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil)), "algorithm not accepted"},
		{"expired", hs(map[string]any{"exp": now.Add(-time.Minute).Unix()}), "expired"},
		{"expired within leeway", hs(map[string]any{"exp": now.Add(-10 * time.Second).Unix()}), ""},
		{"no exp", hs(map[string]any{"exp": nil}), "missing claim"},
		{"not yet valid", hs(map[string]any{"nbf": now.Add(time.Minute).Unix()}), "not yet valid"},
		{"nbf within leeway", hs(map[string]any{"nbf": now.Add(10 * time.Second).Unix()}), ""},
		{"wrong issuer", hs(map[string]any{"iss": "evil"}), "wrong issuer"},
		{"no tenant", hs(map[string]any{"tenant": nil}), "missing user or tenant claim"},
		{"tenant not a string", hs(map[string]any{"tenant": 5}), "missing user or tenant claim"},
		{"garbage", "a.b.c", "malformed"},
		// The audience is always required.
		{"no audience", hs(map[string]any{"aud": nil}), "missing claim"},
		{"email verification audience", hs(map[string]any{"aud": "openmeet-email-verification"}), "wrong audience"},
		{"audience list with ours", hs(map[string]any{"aud": []string{"openmeet-api", "openmeet-bridge"}}), ""},
		{"audience list without ours", hs(map[string]any{"aud": []string{"openmeet-api"}}), "wrong audience"},
		// typ, as a claim or in the header, must not name another kind of
		// token; absent or one of the access token values, it is fine.
		{"typ claim access", hs(map[string]any{"typ": "access"}), ""},
		{"typ claim Bearer", hs(map[string]any{"typ": "Bearer"}), ""},
		{"typ claim refresh", hs(map[string]any{"typ": "refresh"}), "not an access token"},
		{"typ claim Refresh", hs(map[string]any{"typ": "Refresh"}), "not an access token"},
		{"typ claim email verification", hs(map[string]any{"typ": "email-verification"}), "not an access token"},
		{"typ claim ID", hs(map[string]any{"typ": "ID"}), "not an access token"},
		{"typ claim not a string", hs(map[string]any{"typ": 1}), "not an access token"},
		{"typ claim empty", hs(map[string]any{"typ": ""}), "not an access token"},
		{"typ header absent", typed(map[string]any{"typ": nil}), ""},
		{"typ header at+jwt", typed(map[string]any{"typ": "at+jwt"}), ""},
		{"typ header application/at+jwt", typed(map[string]any{"typ": "application/at+JWT"}), ""},
		{"typ header refresh", typed(map[string]any{"typ": "refresh+jwt"}), "not an access token"},
		{"typ header secevent", typed(map[string]any{"typ": "secevent+jwt"}), "not an access token"},
	}
	for _, tt := range tests {
		tenant, slug, err := v.Verify(tt.token)
		if tt.reason == "" && (err != nil || tenant != "acme" || slug != "ada") {
			t.Errorf("%s: %q %q %v, want acme/ada", tt.name, tenant, slug, err)
		}
		if tt.reason != "" {
			if err == nil || !errors.Is(err, ErrBadToken) {
				t.Errorf("%s: accepted (%q %q)", tt.name, tenant, slug)
			} else if got := RefusalReason(err); got != tt.reason {
				t.Errorf("%s: refused as %q (%v), want %q", tt.name, got, err, tt.reason)
			}
		}
	}
}

func TestVerifierConfigErrors(t *testing.T) {
	t.Parallel()
	secret := []string{"0123456789abcdef0123456789abcdef"}
	for _, tt := range []struct {
		cfg  JWTConfig
		want string
	}{
		{JWTConfig{UserClaim: "sub", TenantClaim: "tenant", Audience: "b"}, "set secrets or public_keys"},
		{JWTConfig{Secrets: []string{"short"}, UserClaim: "sub", TenantClaim: "tenant", Audience: "b"}, "secrets[0]"},
		{JWTConfig{PublicKeys: []string{"not pem"}, UserClaim: "sub", TenantClaim: "tenant", Audience: "b"}, "public_keys[0]"},
		{JWTConfig{Secrets: secret, Audience: "b"}, "user_claim"},
		{JWTConfig{Secrets: secret, UserClaim: "sub", TenantClaim: "tenant"}, "client_api.jwt.audience: must be set"},
	} {
		if _, err := NewVerifier(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config %+v: %v, want an error naming %q", tt.cfg, err, tt.want)
		}
	}
	if _, err := NewVerifier(JWTConfig{Secrets: secret, UserClaim: "sub", TenantClaim: "tenant", Audience: "b"}); err != nil {
		t.Errorf("a complete config refused: %v", err)
	}
}
