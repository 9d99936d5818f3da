package media

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // registers GIF for image.DecodeConfig
	_ "image/jpeg"
	_ "image/png"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"unicode"

	"github.com/rs/zerolog"

	"github.com/openmeet-team/openmeet-bridge/database"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Errors of an upload the client can fix; nothing is stored for any of
// them.
var (
	// ErrTooLarge is a file over the smaller of the bridge's and Synapse's
	// limits.
	ErrTooLarge = errors.New("file too large")
	// ErrTypeNotAllowed is a media type the configuration does not allow.
	ErrTypeNotAllowed = errors.New("file type not allowed")
	// ErrNotMatching is a file whose bytes are not of the type it claims
	// (an image that does not decode, HTML sent as something else).
	ErrNotMatching = errors.New("file content does not match its type")
	// ErrTruncated is an upload whose body ended before its Content-Length.
	ErrTruncated = errors.New("upload truncated")
	// ErrEmpty is an upload without a byte.
	ErrEmpty = errors.New("empty file")
)

// prefixSize is how much of an upload is read before it is streamed on:
// enough for the image header (JPEG's frame header may follow large EXIF
// and ICC segments), never the whole file.
const prefixSize = 256 << 10

// Thumbnails: Synapse makes a scaled thumbnail of this size among its
// defaults; images larger than it get it as their thumbnail_url.
const (
	thumbWidth, thumbHeight = 800, 600
	maxThumbBytes           = 4 << 20
)

// Service uploads and serves media for the client API.
type Service struct {
	Config *Config
	Repo   *Repo
	Signer *Signer
	// Register makes sure the homeserver knows a ghost before acting as it.
	Register func(ctx context.Context, userID id.UserID) error
	// DB holds the spool of files accepted while Synapse is unreachable.
	DB *database.Database
}

// Limit is the largest upload allowed now: the bridge's limit, or
// Synapse's m.upload.size when that is smaller. When Synapse does not
// answer it returns ErrUnavailable with the limit Synapse gave last (or
// the bridge's).
func (s *Service) Limit(ctx context.Context) (int64, error) {
	hs, err := s.Repo.UploadLimit(ctx)
	if errors.Is(err, ErrUnavailable) {
		hs, _ = s.Repo.LastLimit()
	} else if err != nil {
		return 0, err
	}
	if hs > 0 && hs < s.Config.MaxUploadBytes {
		return hs, err
	}
	return s.Config.MaxUploadBytes, err
}

// Uploaded is what an upload stored, and the message content to send.
type Uploaded struct {
	MXC          string
	ThumbnailMXC string
	Content      map[string]any
}

// Check refuses, before anything is read, an upload whose declared size or
// type is not allowed. spool is true when Synapse does not answer: the
// file is then kept in the spool (Spool) until the outbox sends it.
func (s *Service) Check(ctx context.Context, size int64, mediaType string) (spool bool, err error) {
	if mediaType == "" || !s.Config.Allowed(mediaType) {
		return false, fmt.Errorf("%w: %q", ErrTypeNotAllowed, mediaType)
	}
	if size == 0 {
		return false, ErrEmpty
	}
	limit, err := s.Limit(ctx)
	spool = errors.Is(err, ErrUnavailable)
	if err != nil && !spool {
		return false, err
	}
	if size > limit {
		return false, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, size, limit)
	}
	if spool {
		if s.DB == nil || s.Config.SpoolMaxBytes <= 0 {
			return false, err
		}
		used, dbErr := s.DB.MediaSpool.Bytes(ctx)
		if dbErr != nil {
			return false, dbErr
		}
		if used+size > s.Config.SpoolMaxBytes {
			return false, fmt.Errorf("%w, and the spool is full (%d of %d bytes)", ErrUnavailable, used, s.Config.SpoolMaxBytes)
		}
	}
	return spool, nil
}

// readHead reads the first bytes of a file of size bytes (at most
// prefixSize), checks that they are of mediaType and reads what info can
// say from them (an image's size).
func readHead(body io.Reader, size int64, mediaType string) ([]byte, *event.FileInfo, error) {
	prefix := make([]byte, min(size, prefixSize))
	if _, err := io.ReadFull(body, prefix); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrTruncated, err)
	}
	info := &event.FileInfo{MimeType: mediaType, Size: int(size)}
	if err := inspect(prefix, mediaType, info); err != nil {
		return nil, nil, err
	}
	return prefix, info, nil
}

// Upload streams a file of size bytes to Synapse as userID and makes the
// m.image, m.video, m.audio or m.file content for it. Call Check first.
func (s *Service) Upload(ctx context.Context, userID id.UserID, body io.Reader, size int64, mediaType, filename string) (*Uploaded, error) {
	prefix, info, err := readHead(body, size, mediaType)
	if err != nil {
		return nil, err
	}
	if err := s.Register(ctx, userID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	filename = CleanFilename(filename, mediaType)
	rest := &truncationReader{r: body}
	mxc, err := s.Repo.Upload(ctx, userID, io.MultiReader(bytes.NewReader(prefix), rest), size, mediaType, filename)
	if rest.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTruncated, rest.err)
	}
	if err != nil {
		if StatusOf(err) == http.StatusRequestEntityTooLarge {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, fmt.Errorf("failed to upload: %w", err)
	}
	up := &Uploaded{MXC: mxc}
	if strings.HasPrefix(mediaType, "image/") && (info.Width > thumbWidth || info.Height > thumbHeight) {
		up.ThumbnailMXC = s.thumbnail(ctx, userID, mxc, info)
	}
	up.Content, err = messageContent(mediaType, filename, mxc, info)
	return up, err
}

// messageContent is the m.image, m.video, m.audio or m.file content of a
// file; mxc is empty while the file waits in the spool.
func messageContent(mediaType, filename, mxc string, info *event.FileInfo) (map[string]any, error) {
	content := &event.MessageEventContent{MsgType: msgType(mediaType), Body: filename, FileName: filename,
		URL: id.ContentURIString(mxc), Info: info}
	raw, err := json.Marshal(content)
	var out map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &out)
	}
	return out, err
}

// truncationReader remembers a read error of the client's body, which
// net/http reports as io.ErrUnexpectedEOF when the body ends before its
// Content-Length.
type truncationReader struct {
	r   io.Reader
	err error
}

func (t *truncationReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF && t.err == nil {
		t.err = err
	}
	return n, err
}

// thumbnail fetches the scaled thumbnail Synapse made of an image and
// stores it as its own file, as Matrix clients expect of thumbnail_url. A
// failure only leaves the message without one.
func (s *Service) thumbnail(ctx context.Context, userID id.UserID, mxc string, info *event.FileInfo) string {
	log := zerolog.Ctx(ctx)
	server, mediaID, _ := ParseMXC(mxc)
	resp, err := s.Repo.Fetch(ctx, userID, Thumbnail, server, mediaID, url.Values{
		"width": {fmt.Sprint(thumbWidth)}, "height": {fmt.Sprint(thumbHeight)}, "method": {"scale"}})
	if err != nil {
		log.Info().Err(err).Msg("Homeserver made no thumbnail")
		return ""
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxThumbBytes+1))
	thumbType := ParseType(resp.Header.Get("Content-Type"))
	if err != nil || len(data) > maxThumbBytes || !strings.HasPrefix(thumbType, "image/") {
		log.Info().Err(err).Int("size", len(data)).Str("type", thumbType).Msg("Unusable thumbnail")
		return ""
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || cfg.Width >= info.Width {
		return ""
	}
	thumbMXC, err := s.Repo.Upload(ctx, userID, bytes.NewReader(data), int64(len(data)), thumbType, "thumbnail"+extension(thumbType))
	if err != nil {
		log.Info().Err(err).Msg("Failed to store thumbnail")
		return ""
	}
	info.ThumbnailURL = id.ContentURIString(thumbMXC)
	info.ThumbnailInfo = &event.FileInfo{MimeType: thumbType, Size: len(data), Width: cfg.Width, Height: cfg.Height}
	return thumbMXC
}

// inspect checks the first bytes of a file against its declared type and
// reads an image's size from its header.
func inspect(prefix []byte, mediaType string, info *event.FileInfo) error {
	sniffed := ParseType(http.DetectContentType(prefix))
	if sniffed == "text/html" && mediaType != "text/html" {
		return fmt.Errorf("%w: the file is HTML", ErrNotMatching)
	}
	var format string
	switch mediaType {
	case "image/png":
		format = "png"
	case "image/jpeg":
		format = "jpeg"
	case "image/gif":
		format = "gif"
	case "image/webp":
		w, h, ok := webpSize(prefix)
		if !ok {
			return fmt.Errorf("%w: not a WebP image", ErrNotMatching)
		}
		info.Width, info.Height = w, h
		return nil
	default:
		if strings.HasPrefix(mediaType, "image/") && strings.HasPrefix(sniffed, "image/") && sniffed != mediaType {
			return fmt.Errorf("%w: the file is %s", ErrNotMatching, sniffed)
		}
		return nil
	}
	cfg, got, err := image.DecodeConfig(bytes.NewReader(prefix))
	if err != nil || got != format {
		return fmt.Errorf("%w: not a %s image", ErrNotMatching, strings.ToUpper(format))
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return fmt.Errorf("%w: the image has no size", ErrNotMatching)
	}
	info.Width, info.Height = cfg.Width, cfg.Height
	return nil
}

// webpSize reads a WebP image's size from its first chunk (lossy VP8,
// lossless VP8L or extended VP8X).
func webpSize(b []byte) (w, h int, ok bool) {
	if len(b) < 30 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WEBP" {
		return 0, 0, false
	}
	switch string(b[12:16]) {
	case "VP8 ":
		if b[23] != 0x9d || b[24] != 0x01 || b[25] != 0x2a {
			return 0, 0, false
		}
		w = int(binary.LittleEndian.Uint16(b[26:28]) & 0x3fff)
		h = int(binary.LittleEndian.Uint16(b[28:30]) & 0x3fff)
	case "VP8L":
		if b[20] != 0x2f {
			return 0, 0, false
		}
		bits := binary.LittleEndian.Uint32(b[21:25])
		w, h = int(bits&0x3fff)+1, int((bits>>14)&0x3fff)+1
	case "VP8X":
		w = int(uint32(b[24])|uint32(b[25])<<8|uint32(b[26])<<16) + 1
		h = int(uint32(b[27])|uint32(b[28])<<8|uint32(b[29])<<16) + 1
	default:
		return 0, 0, false
	}
	return w, h, w > 0 && h > 0
}

func msgType(mediaType string) event.MessageType {
	switch {
	case strings.HasPrefix(mediaType, "image/"):
		return event.MsgImage
	case strings.HasPrefix(mediaType, "video/"):
		return event.MsgVideo
	case strings.HasPrefix(mediaType, "audio/"):
		return event.MsgAudio
	}
	return event.MsgFile
}

var extensions = map[string]string{
	"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
	"video/mp4": ".mp4", "video/webm": ".webm", "audio/mpeg": ".mp3", "audio/ogg": ".ogg",
	"application/pdf": ".pdf", "text/plain": ".txt",
}

func extension(mediaType string) string { return extensions[mediaType] }

// CleanFilename makes a file name safe to show and to put into headers:
// no directories, no control or format characters, at most 200 bytes; a
// name made up from the type when nothing is left.
func CleanFilename(name, mediaType string) string {
	name = path.Base(strings.ReplaceAll(name, "\\", "/"))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '"' {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	for len(name) > 200 {
		_, size := lastRune(name)
		name = name[:len(name)-size]
	}
	if name == "" || name == "." || name == "/" || name == ".." {
		name = "file" + extension(mediaType)
	}
	return name
}

func lastRune(s string) (rune, int) {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i]&0xc0 != 0x80 {
			return []rune(s[i:])[0], len(s) - i
		}
	}
	return 0, 1
}
