package api

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	UserClaim   string `yaml:"user_claim"`
	TenantClaim string `yaml:"tenant_claim"`
	// Issuer is checked when set.
	Issuer string `yaml:"issuer"`
	// Audience must be in every token's aud claim; it may not be empty, so
	// that a token OpenMeet made for something else (its own API, an email
	// link) and signed with the same key does not open the client API.
	Audience string        `yaml:"audience"`
	Leeway   time.Duration `yaml:"leeway"`
}

// Why a token is refused. Every one of them is also an ErrBadToken; the
// client API answers 401 to all alike and logs which it was.
var (
	// ErrBadToken is returned for a token that does not verify or lacks
	// the claims.
	ErrBadToken = errors.New("invalid token")
	// ErrNotAccessToken is returned for a token whose typ (header or
	// claim) says it is something other than an access token: a refresh
	// token, an ID token, an email verification token.
	ErrNotAccessToken = fmt.Errorf("%w: not an access token", ErrBadToken)
	// ErrAlgorithm is returned for a token signed with an algorithm other
	// than HS256, RS256 and ES256 ("none" included).
	ErrAlgorithm = fmt.Errorf("%w: algorithm not accepted", ErrBadToken)
	// ErrMissingIdentity is returned for a token without the user or
	// tenant claim.
	ErrMissingIdentity = fmt.Errorf("%w: missing user or tenant claim", ErrBadToken)
)

// accessTypes are the values of typ, in the header or as a claim, that an
// access token may carry (compared without case); a token without typ is
// taken for one. RFC 7519 suggests "JWT", RFC 9068 "at+jwt" (or its media
// type); "access" and Keycloak's "Bearer" are what issuers that also mint
// other kinds of token put in the claim. Anything else ("refresh",
// "Refresh", "ID", "email-verification", …) names another kind of token.
var accessTypes = []string{"jwt", "at+jwt", "application/at+jwt", "access", "bearer"}

// validMethods are the signing algorithms accepted.
var validMethods = []string{"HS256", "RS256", "ES256"}

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
	if cfg.Audience == "" {
		return nil, errors.New("client_api.jwt.audience: must be set (the aud OpenMeet puts in the tokens it makes for the bridge); " +
			"without it, any token signed with the same key would do, a refresh token or an email link's included")
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(validMethods),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithExpirationRequired(),
		jwt.WithAudience(cfg.Audience),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
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
// The tenant comes only from the signed claims. Errors are ErrBadToken;
// RefusalReason says why in a word or two.
func (v *Verifier) Verify(raw string) (tenant, slug string, err error) {
	claims := jwt.MapClaims{}
	token, err := v.parser.ParseWithClaims(raw, claims, v.keys)
	if err != nil {
		if token != nil && token.Header != nil && !errors.Is(err, jwt.ErrTokenMalformed) &&
			!slices.Contains(validMethods, fmt.Sprint(token.Header["alg"])) {
			return "", "", fmt.Errorf("%w: %.20q", ErrAlgorithm, fmt.Sprint(token.Header["alg"]))
		}
		return "", "", fmt.Errorf("%w: %w", ErrBadToken, err)
	}
	if typ, ok := token.Header["typ"]; ok && !isAccessType(typ) {
		return "", "", fmt.Errorf("%w: header typ %.40q", ErrNotAccessToken, fmt.Sprint(typ))
	}
	if typ, ok := claims["typ"]; ok && !isAccessType(typ) {
		return "", "", fmt.Errorf("%w: claim typ %.40q", ErrNotAccessToken, fmt.Sprint(typ))
	}
	tenant, _ = claims[v.cfg.TenantClaim].(string)
	slug, _ = claims[v.cfg.UserClaim].(string)
	if tenant == "" || slug == "" {
		return "", "", fmt.Errorf("%w: claims %q and %q must be non-empty strings", ErrMissingIdentity, v.cfg.TenantClaim, v.cfg.UserClaim)
	}
	return tenant, slug, nil
}

func isAccessType(typ any) bool {
	s, ok := typ.(string)
	if !ok {
		return false
	}
	return slices.ContainsFunc(accessTypes, func(t string) bool { return strings.EqualFold(s, t) })
}

// RefusalReason names, for the log, why Verify refused a token: expired,
// wrong audience, bad signature, … It never quotes the token.
func RefusalReason(err error) string {
	switch {
	case errors.Is(err, ErrNotAccessToken):
		return "not an access token"
	case errors.Is(err, ErrMissingIdentity):
		return "missing user or tenant claim"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, ErrAlgorithm):
		return "algorithm not accepted"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "no key for its algorithm"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "not yet valid"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "missing claim"
	}
	return "invalid"
}
