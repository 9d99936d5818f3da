package appservice

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/openmeet-team/openmeet-bridge/database"
	"github.com/openmeet-team/openmeet-bridge/ident"
)

// EventSink receives what a transaction brought, after it is durable. It is
// called inside the request, so it must not block for long.
type EventSink interface {
	EventsLogged(ctx context.Context, events []*database.LoggedEvent)
	EphemeralReceived(ctx context.Context, events []*Ephemeral)
}

// ErrUnknownUser is returned by a UserRegistrar for a user of our namespace
// that the bridge does not know; the homeserver is told it does not exist.
var ErrUnknownUser = errors.New("no such user in the bridge")

// UserRegistrar makes sure a user of our namespace exists on the homeserver.
type UserRegistrar interface {
	EnsureRegistered(ctx context.Context, userID id.UserID) error
}

// AliasResolver creates the room behind an alias of our namespace on demand.
// It returns false when the alias belongs to nothing the bridge knows.
type AliasResolver interface {
	ResolveAlias(ctx context.Context, alias id.RoomAlias) (bool, error)
}

// Server serves the endpoints Synapse calls under /_matrix/app/v1.
type Server struct {
	hsToken []byte
	// tokenInQuery: appservice.hs_token_in_query.
	tokenInQuery bool
	maxBody      int64
	db           *database.Database
	namer        *ident.Namer
	botID        id.UserID
	log          zerolog.Logger
	metrics      *serverMetrics

	Sink    EventSink
	Users   UserRegistrar
	Aliases AliasResolver
}

// NewServer builds the endpoint handlers. Sink, Users and Aliases may be set
// afterwards; a nil one means "nothing to do" (Users: unknown; Aliases: 404).
func NewServer(cfg *Config, domain string, db *database.Database, log zerolog.Logger, reg prometheus.Registerer) (*Server, error) {
	namer, err := cfg.Namer(domain)
	if err != nil {
		return nil, err
	}
	m, err := newServerMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Server{
		hsToken:      []byte(cfg.HSToken),
		tokenInQuery: cfg.HSTokenInQuery,
		maxBody:      cfg.MaxBodyBytes,
		db:           db,
		namer:        namer,
		botID:        cfg.BotUserID(domain),
		log:          log.With().Str("component", "appservice").Logger(),
		metrics:      m,
	}, nil
}

// Register mounts the endpoints on r. Everything under /_matrix/app that is
// not one of them answers 404 M_UNRECOGNIZED, after the token check.
func (s *Server) Register(r *mux.Router) {
	sub := r.PathPrefix("/_matrix/app/").Subrouter()
	sub.Use(s.authenticate)
	sub.HandleFunc("/v1/transactions/{txnId}", s.putTransaction).Methods(http.MethodPut)
	sub.HandleFunc("/v1/users/{userId}", s.getUser).Methods(http.MethodGet)
	sub.HandleFunc("/v1/rooms/{roomAlias}", s.getRoom).Methods(http.MethodGet)
	sub.HandleFunc("/v1/ping", s.postPing).Methods(http.MethodPost)
	// Last, so that it only catches what the routes above did not; being a
	// route, it runs behind the token check like them.
	sub.PathPrefix("/").HandlerFunc(unrecognized)
}

// LoadLastTransaction sets the last-transaction metric from the database,
// so that a restart does not look like a long silence of the homeserver.
func (s *Server) LoadLastTransaction(ctx context.Context) error {
	_, at, ok, err := s.db.EventLog.LastTxn(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the last transaction: %w", err)
	}
	if ok {
		s.metrics.seen(at)
	}
	return nil
}

func unrecognized(w http.ResponseWriter, r *http.Request) {
	mautrix.MUnrecognized.WithMessage("Unrecognized request").Write(w)
}

// authenticate checks the hs_token in constant time. The Authorization
// header is the spec's way and what Synapse sends. The access_token query
// parameter, what older homeservers sent, is accepted only with
// appservice.hs_token_in_query: a token in a URL ends up in the logs of
// every proxy on the way.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok && r.URL.Query().Has("access_token") {
			if !s.tokenInQuery {
				s.log.Warn().Str("path", r.URL.Path).Str("remote_addr", r.RemoteAddr).
					Msg("Refused a request with the hs_token in the query string; the homeserver must send it in the Authorization header (or set appservice.hs_token_in_query)")
				mautrix.MMissingToken.WithMessage("Send the token in the Authorization header; the access_token query parameter is not accepted").Write(w)
				return
			}
			token = r.URL.Query().Get("access_token")
		}
		if token == "" {
			mautrix.MMissingToken.WithMessage("Missing access token").Write(w)
			return
		}
		if subtle.ConstantTimeCompare([]byte(token), s.hsToken) != 1 {
			mautrix.MForbidden.WithMessage("Invalid access token").Write(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearerToken extracts the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	const prefix = "bearer "
	h := r.Header.Get("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

func (s *Server) putTransaction(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	txnID := pathVar(r, "txnId")
	if err := checkTxnID(txnID); err != nil {
		s.metrics.txnResult("bad_txn_id")
		s.log.Warn().Err(err).Str("txn_id", clip(txnID)).Msg("Rejected transaction with a bad txn id")
		mautrix.MInvalidParam.WithMessage("%s", err.Error()).Write(w)
		return
	}
	log := s.log.With().Str("txn_id", txnID).Logger()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.metrics.txnResult("too_large")
			mautrix.MTooLarge.WithMessage("Transaction body is larger than %d bytes", s.maxBody).Write(w)
			return
		}
		s.metrics.txnResult("read_error")
		log.Warn().Err(err).Msg("Failed to read transaction body")
		mautrix.MUnknown.WithMessage("Failed to read body").WithStatus(http.StatusBadRequest).Write(w)
		return
	}
	txn, err := parseTransaction(body)
	if err != nil {
		s.metrics.txnResult("bad_json")
		log.Warn().Err(err).Msg("Rejected malformed transaction")
		if errors.Is(err, errNotJSON) {
			mautrix.MNotJSON.WithMessage("Transaction body is not valid JSON").Write(w)
		} else {
			mautrix.MBadJSON.WithMessage("%s", err.Error()).Write(w)
		}
		return
	}
	ephemeralRaw := make([][]byte, len(txn.ephemeral))
	for i, eph := range txn.ephemeral {
		ephemeralRaw[i] = eph.Content
	}
	// Skipped events are not part of the digest: a retry of the same body
	// skips the same ones.
	digest := database.TxnDigest(txn.events, ephemeralRaw)
	written, err := s.db.EventLog.AppendTransaction(r.Context(), txnID, digest, txn.events)
	if errors.Is(err, database.ErrDuplicateTxn) {
		s.metrics.txnResult("duplicate")
		s.metrics.seen(time.Now())
		log.Debug().Msg("Transaction already applied")
		writeJSON(w, http.StatusOK, struct{}{})
		return
	} else if err != nil {
		s.metrics.txnResult("db_error")
		log.Err(err).Int("event_count", len(txn.events)).Msg("Failed to store transaction")
		// Synapse keeps the transaction and retries it.
		mautrix.MUnknown.WithMessage("Failed to store transaction").Write(w)
		return
	}
	s.metrics.txnDone(len(written), time.Since(start))
	s.reportRejected(log, txn.rejected)
	if s.Sink != nil {
		ctx := log.WithContext(r.Context())
		if len(written) > 0 {
			s.Sink.EventsLogged(ctx, written)
		}
		if len(txn.ephemeral) > 0 {
			s.Sink.EphemeralReceived(ctx, txn.ephemeral)
		}
	}
	log.Debug().Int("events", len(txn.events)).Int("logged", len(written)).Int("ephemeral", len(txn.ephemeral)).
		Int("rejected", len(txn.rejected)).Msg("Transaction applied")
	writeJSON(w, http.StatusOK, struct{}{})
}

// maxRejectLogLines bounds the log lines one transaction's skipped events
// produce; the counter counts them all.
const maxRejectLogLines = 10

// reportRejected counts and logs the events of an applied transaction that
// were skipped. It runs once per applied transaction, so a retry of the
// same transaction does not count them again.
func (s *Server) reportRejected(log zerolog.Logger, rejected []rejectedEvent) {
	for i, rej := range rejected {
		s.metrics.eventRejected(rej.err.reason)
		if i < maxRejectLogLines {
			log.Warn().Str("list", rej.list).Int("index", rej.index).Str("reason", rej.err.reason).
				Str("error", rej.err.msg).Msg("Skipped malformed event")
		}
	}
	if len(rejected) > maxRejectLogLines {
		log.Warn().Int("not_logged", len(rejected)-maxRejectLogLines).Msg("Skipped more malformed events")
	}
}

// checkTxnID refuses txn ids Synapse never sends (it sends decimal
// numbers) and the database could not store as they are.
func checkTxnID(txnID string) error {
	switch {
	case txnID == "" || len(txnID) > maxFieldBytes:
		return fmt.Errorf("the transaction ID must be 1 to %d bytes long", maxFieldBytes)
	case !utf8.ValidString(txnID) || strings.IndexFunc(txnID, unicode.IsControl) >= 0:
		return errors.New("the transaction ID must be UTF-8 without control characters")
	}
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	userID := id.UserID(pathVar(r, "userId"))
	if userID != s.botID {
		if _, _, err := s.namer.ParseGhost(userID); err != nil || s.Users == nil {
			mautrix.MNotFound.WithMessage("No such user in the bridge namespace").Write(w)
			return
		}
	}
	if s.Users != nil {
		if err := s.Users.EnsureRegistered(r.Context(), userID); errors.Is(err, ErrUnknownUser) {
			mautrix.MNotFound.WithMessage("No such user in the bridge namespace").Write(w)
			return
		} else if err != nil {
			s.log.Err(err).Stringer("user_id", userID).Msg("Failed to register queried user")
			mautrix.MUnknown.WithMessage("Failed to create user").Write(w)
			return
		}
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) getRoom(w http.ResponseWriter, r *http.Request) {
	alias := id.RoomAlias(pathVar(r, "roomAlias"))
	if _, _, _, err := s.namer.ParseAlias(alias); err != nil || s.Aliases == nil {
		mautrix.MNotFound.WithMessage("No such room alias in the bridge namespace").Write(w)
		return
	}
	created, err := s.Aliases.ResolveAlias(r.Context(), alias)
	if err != nil {
		s.log.Err(err).Stringer("alias", alias).Msg("Failed to create room for alias")
		mautrix.MUnknown.WithMessage("Failed to create room").Write(w)
		return
	}
	if !created {
		mautrix.MNotFound.WithMessage("No portal for this alias").Write(w)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) postPing(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TransactionID string `json:"transaction_id"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<16))
	if err == nil && len(raw) > 0 {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		mautrix.MNotJSON.WithMessage("Ping body is not valid JSON").Write(w)
		return
	}
	s.log.Debug().Str("ping_txn_id", body.TransactionID).Msg("Received ping from homeserver")
	writeJSON(w, http.StatusOK, struct{}{})
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// pathVar returns a decoded path variable. The bridge's router matches
// escaped paths (so a "/" inside a slug cannot split it), and Synapse
// escapes user IDs and aliases ("%40", "%23", "%3A").
func pathVar(r *http.Request, name string) string {
	raw := mux.Vars(r)[name]
	if v, err := url.PathUnescape(raw); err == nil {
		return v
	}
	return raw
}
