package bridge

import (
	"github.com/openmeet-team/openmeet-bridge/media"
)

// mediaService builds uploads and downloads on the appservice's access to
// Synapse.
func (b *Bridge) mediaService() *media.Service {
	cfg := &b.Config.ClientAPI.Media
	key := []byte(cfg.SigningKey)
	if cfg.SigningKey == "" {
		key = media.DeriveKey(b.Config.Appservice.ASToken)
	}
	bot := b.HS.Bot().Client
	return &media.Service{
		Config:   cfg,
		Repo:     media.NewRepo(b.Config.Homeserver.Address, b.Config.Appservice.ASToken, bot.Client.Transport),
		Signer:   media.NewSigner(key, cfg.URLTTL, cfg.PublicURL),
		Register: b.HS.EnsureRegistered,
		DB:       b.DB,
	}
}
