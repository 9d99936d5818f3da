package api

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig says how OpenMeet's tokens are verified.
type JWTConfig struct {
	// Secrets verify HS256 tokens; any one of them will do (rotation).
	Secrets []string `yaml:"secrets"`
	// PublicKeys are PEM public keys that verify RS256 or ES256 tokens.
	PublicKeys []string `yaml:"public_keys"`
	// UserClaim and TenantClaim name the claims holding the user's slug and
	// tenant.
	UserClaim   string        `yaml:"user_claim"`
	TenantClaim string        `yaml:"tenant_claim"`
	Issuer      string        `yaml:"issuer"`
	Audience    string        `yaml:"audience"`
	Leeway      time.Duration `yaml:"leeway"`
}

// ErrBadToken is returned for a token that does not verify or lacks the
// claims; the client API answers 401.
var ErrBadToken = errors.New("invalid token")

// Verifier checks OpenMeet JWTs.
type Verifier struct {
	cfg    JWTConfig
	hmac   []jwt.VerificationKey
	rsa    []jwt.VerificationKey
	ecdsa  []jwt.VerificationKey
	parser *jwt.Parser
}

// NewVerifier parses the keys; errors name the config key.
func NewVerifier(cfg JWTConfig) (*Verifier, error) {
	v := &Verifier{cfg: cfg}
	for i, s := range cfg.Secrets {
		if len(s) < 32 {
			return nil, fmt.Errorf("client_api.jwt.secrets[%d]: must be at least 32 characters", i)
		}
		v.hmac = append(v.hmac, []byte(s))
	}
	for i, p := range cfg.PublicKeys {
		block, _ := pem.Decode([]byte(p))
		if block == nil {
			return nil, fmt.Errorf("client_api.jwt.public_keys[%d]: not a PEM block", i)
		}
		key, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("client_api.jwt.public_keys[%d]: %w", i, err)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			v.rsa = append(v.rsa, k)
		case *ecdsa.PublicKey:
			v.ecdsa = append(v.ecdsa, k)
		default:
			return nil, fmt.Errorf("client_api.jwt.public_keys[%d]: only RSA and ECDSA keys are supported", i)
		}
	}
	if len(v.hmac)+len(v.rsa)+len(v.ecdsa) == 0 {
		return nil, errors.New("client_api.jwt: set secrets or public_keys")
	}
	if cfg.UserClaim == "" || cfg.TenantClaim == "" {
		return nil, errors.New("client_api.jwt.user_claim, tenant_claim: must be set")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256", "RS256", "ES256"}),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// keys picks the keys for the token's algorithm, so an HS256 token can
// never be checked against a public key used as an HMAC secret.
func (v *Verifier) keys(token *jwt.Token) (any, error) {
	var keys []jwt.VerificationKey
	switch token.Method.Alg() {
	case "HS256":
		keys = v.hmac
	case "RS256":
		keys = v.rsa
	case "ES256":
		keys = v.ecdsa
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key for %s", token.Method.Alg())
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// Verify checks a token and returns the tenant and user slug it names.
// The tenant comes only from the signed claims.
func (v *Verifier) Verify(raw string) (tenant, slug string, err error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keys); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrBadToken, err)
	}
	tenant, _ = claims[v.cfg.TenantClaim].(string)
	slug, _ = claims[v.cfg.UserClaim].(string)
	if tenant == "" || slug == "" {
		return "", "", fmt.Errorf("%w: claims %q and %q must be non-empty strings", ErrBadToken, v.cfg.TenantClaim, v.cfg.UserClaim)
	}
	return tenant, slug, nil
}
