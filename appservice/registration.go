package appservice

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"

	mxas "maunium.net/go/mautrix/appservice"
)

// NewToken returns a fresh random secret of 64 hex characters.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand never fails on supported platforms.
		panic(fmt.Errorf("failed to read random bytes: %w", err))
	}
	return hex.EncodeToString(b[:])
}

// NewRegistration builds the registration Synapse needs for cfg: fresh
// tokens go into both cfg and the result.
func NewRegistration(cfg *Config, domain string) (*mxas.Registration, error) {
	namer, err := cfg.Namer(domain)
	if err != nil {
		return nil, err
	}
	cfg.ASToken, cfg.HSToken = NewToken(), NewToken()
	notRateLimited := false
	reg := &mxas.Registration{
		ID:                  cfg.ID,
		URL:                 cfg.Address,
		AppToken:            cfg.ASToken,
		ServerToken:         cfg.HSToken,
		SenderLocalpart:     cfg.Bot.Username,
		RateLimited:         &notRateLimited,
		EphemeralEvents:     true,
		SoruEphemeralEvents: true,
	}
	reg.Namespaces.UserIDs.Register(regexp.MustCompile(namer.UserNamespaceRegex()), true)
	if legacy := namer.Legacy().Regex(); legacy != "" {
		// Not exclusive: the accounts exist and their owners keep using them.
		reg.Namespaces.UserIDs.Register(regexp.MustCompile(legacy), false)
	}
	reg.Namespaces.RoomAliases.Register(regexp.MustCompile(namer.AliasNamespaceRegex()), true)
	return reg, nil
}

// CheckRegistration reports every way reg disagrees with cfg, so that a
// bridge whose tokens Synapse does not know refuses to start instead of
// failing every request.
func CheckRegistration(reg *mxas.Registration, cfg *Config, domain string) error {
	var errs []error
	if reg.ID != cfg.ID {
		errs = append(errs, fmt.Errorf("registration id %q differs from appservice.id %q", reg.ID, cfg.ID))
	}
	if reg.AppToken != cfg.ASToken {
		errs = append(errs, errors.New("registration as_token differs from appservice.as_token"))
	}
	if reg.ServerToken != cfg.HSToken {
		errs = append(errs, errors.New("registration hs_token differs from appservice.hs_token"))
	}
	if reg.SenderLocalpart != cfg.Bot.Username {
		errs = append(errs, fmt.Errorf("registration sender_localpart %q differs from appservice.bot.username %q", reg.SenderLocalpart, cfg.Bot.Username))
	}
	namer, err := cfg.Namer(domain)
	if err == nil {
		if !hasNamespace(reg.Namespaces.UserIDs, namer.UserNamespaceRegex()) {
			errs = append(errs, fmt.Errorf("registration lacks the exclusive user namespace %s", namer.UserNamespaceRegex()))
		}
		if legacy := namer.Legacy().Regex(); legacy != "" && !hasNamespaceAny(reg.Namespaces.UserIDs, legacy) {
			errs = append(errs, fmt.Errorf("registration lacks the legacy user namespace %s (appservice.legacy_users)", legacy))
		}
		if !hasNamespace(reg.Namespaces.RoomAliases, namer.AliasNamespaceRegex()) {
			errs = append(errs, fmt.Errorf("registration lacks the exclusive alias namespace %s", namer.AliasNamespaceRegex()))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; regenerate it with -g or fix the config", err)
	}
	return nil
}

func hasNamespace(list mxas.NamespaceList, regex string) bool {
	for _, ns := range list {
		if ns.Regex == regex && ns.Exclusive {
			return true
		}
	}
	return false
}

func hasNamespaceAny(list mxas.NamespaceList, regex string) bool {
	for _, ns := range list {
		if ns.Regex == regex {
			return true
		}
	}
	return false
}
