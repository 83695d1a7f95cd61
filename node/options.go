package node

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch/email"
	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/api/events/rules"
	"github.com/heraldhq/herald/persistence"
)

// Options configure a Node: one field per HERALD_* variable of the herald command that
// configures a node, named after it, whose zero value is the variable's default (see
// the package doc).
// Each field's doc says what zero means.
type Options struct {
	// DatabaseURL selects PostgreSQL (the schema is migrated on open). Empty: the
	// embedded store in DataDir.
	DatabaseURL string
	// DataDir is where the embedded store keeps herald.db. Empty: "./data".
	DataDir string
	// DBMaxConns caps the PostgreSQL connection pool. Zero: 16.
	DBMaxConns int32
	// LogRetention is how long each user's event log is kept for catching up. Zero:
	// 720h.
	LogRetention time.Duration

	// JWTSecret verifies HS256 user JWTs: at least 32 bytes. A JWT secret or a JWKS is
	// required.
	JWTSecret []byte
	// JWKS is the path or URL of a JWKS verifying RS256/ES256 user JWTs; a URL must be
	// https (http only on a loopback host). Empty: none.
	JWKS string
	// JWKSMaxAge is how old the cached JWKS may grow before a request refreshes it
	// (less than 30 s counts as 30 s). Zero: 10m.
	JWKSMaxAge time.Duration
	// JWTAudience is the expected aud of user JWTs. Empty: not checked.
	JWTAudience string
	// JWTMaxTTL is the longest user JWT lifetime accepted (exp - now). Zero: not checked.
	JWTMaxTTL time.Duration
	// APIKeys are the service API keys. Empty strings are ignored.
	APIKeys []string
	// WSTokenSecret is what the ws-token key is derived from: at least 32 bytes. Empty:
	// derived from JWTSecret, or random per process when there is none.
	WSTokenSecret []byte
	// WSTokenTTL is the lifetime of a ws-token. Zero: 60s.
	WSTokenTTL time.Duration
	// AllowedOrigins lists the browser origins allowed to open the WebSocket (see
	// api.ValidOrigin); empty strings are ignored. Empty: non-browser clients only.
	AllowedOrigins []string

	// MaxPayload is the largest notification payload, in bytes as sent. Zero: 16384.
	MaxPayload int
	// BatchMax caps what the persistence actor groups into one store transaction: the
	// notifications, and each other operation (a read, an outcome, …) as one. Zero: 1000.
	BatchMax int
	// BatchDelay is how long a lone write waits for company when the store is idle.
	// Zero: no wait.
	BatchDelay time.Duration
	// CommitsInFlight is how many store transactions may run at once (the next batch
	// is written while the last waits for its flush). Zero: 2 on PostgreSQL, 1 on the
	// embedded store, whose single writer gains nothing from a second.
	CommitsInFlight int

	// UserRate is the changes each user may make per second over REST (user token): the
	// notifications it creates, mark-read, read-all, preferences; UserBurst how many
	// saved up. Zero: 10 and 50; a rate of math.Inf(1): no limit.
	UserRate  float64
	UserBurst int
	// ServiceRate is the create requests (single or batch) and events each API key may
	// send per second, ServiceBurst how many saved up. Zero: 10000 and 20000; a rate of
	// math.Inf(1): no limit.
	ServiceRate  float64
	ServiceBurst int
	// UserReadRate is the reads each user may make per second (list routes, unread
	// count, preferences, ws-tokens, WebSocket connects), UserReadBurst how many saved up. Zero: 20 and 100;
	// a rate of math.Inf(1): no limit.
	UserReadRate  float64
	UserReadBurst int
	// BodyBytesInFlight bounds the bytes of batch and event bodies handled at once (see
	// api.Options.BodyBytesInFlight): at least 1 MiB. Zero: 64 MiB.
	BodyBytesInFlight int64

	// WSMaxPerUser caps the WebSocket connections of one user on this node; one more is
	// closed with 4029. Zero: 64.
	WSMaxPerUser int
	// WSQueue is how many frames may wait for one slow connection before it is closed
	// with 4008. Zero: 256.
	WSQueue int
	// WSWriteTimeout bounds the writing of what is queued for a connection. Zero: 10s.
	WSWriteTimeout time.Duration
	// WSPingInterval is how often each connection is pinged. Zero: 25s.
	WSPingInterval time.Duration
	// WSReadLimit is the largest client frame in bytes (at least 256); a bigger one
	// closes with 1009. Zero: 4096.
	WSReadLimit int64
	// WSFrameRate caps the client frames each connection may send per second,
	// WSFrameBurst saved up; a faster connection is closed with 1008. Zero: 50 and 100;
	// a rate of math.Inf(1): no limit.
	WSFrameRate  float64
	WSFrameBurst int

	// HTTPReadTimeout bounds the read of one whole request that is not a WebSocket
	// (see api.HTTPOptions). Zero: 30s.
	HTTPReadTimeout time.Duration
	// HTTPIdleTimeout closes a keep-alive connection waiting for its next request.
	// Zero: 60s.
	HTTPIdleTimeout time.Duration
	// HTTPWriteTimeout bounds one request that is not a WebSocket from the end of its
	// headers to the end of its answer: a client that does not read is dropped then.
	// Zero: 30s.
	HTTPWriteTimeout time.Duration
	// HTTPMaxHeaderBytes limits a request's line and headers (at least 8192). Zero:
	// 65536.
	HTTPMaxHeaderBytes int
	// MaxConns caps the open connections, WebSockets included. Zero: derived from the
	// file limit; above that, Open refuses it.
	MaxConns int

	// RulesFile is the event-routing rules file (HERALD_RULES); Reload reads it again.
	// Rules, when not empty, is the rules document itself and wins over RulesFile.
	// Both empty: no rules (every event is unmatched).
	RulesFile string
	Rules     []byte

	// SMTP enables the email channel: Addr and From both, or neither (see
	// email.Options). Its zero Timeout means DeliveryTimeout. Zero: no email channel.
	SMTP email.Options
	// WebhookURLs are the URLs every webhook delivery is POSTed to; WebhookSecret signs
	// them (whsec_<base64> or at least 32 bytes) and is required with them. Empty: no
	// webhook channel.
	WebhookURLs   []string
	WebhookSecret string

	// DeliveryMaxAttempts is how many failed attempts make a dead letter. Zero: 8.
	DeliveryMaxAttempts int
	// DeliveryBackoff is the first retry delay (doubled per attempt, with jitter),
	// DeliveryBackoffMax its cap, at least DeliveryBackoff. Zero: 5s and 1h.
	DeliveryBackoff    time.Duration
	DeliveryBackoffMax time.Duration
	// DeliveryTimeout bounds one attempt. Zero: 30s.
	DeliveryTimeout time.Duration
	// DeliveryConcurrency is how many attempts may be in flight. Zero: 16.
	DeliveryConcurrency int
	// DeliveryPoll is how often the outbox is checked for due deliveries. Zero: 1s.
	DeliveryPoll time.Duration

	// ClusterAddr turns clustering on: the host:port where this node's embedded NATS
	// server accepts the other nodes' routes (port 0: a free one). It needs
	// DatabaseURL: clustered nodes share one PostgreSQL database. Empty: a single node.
	ClusterAddr string
	// ClusterPeers are the cluster addresses of other nodes; one that answers is enough
	// to join. The first node lists none.
	ClusterPeers []string
	// NATSURL makes the node use an external NATS cluster (its client URL, several
	// comma-separated) instead of an embedded server; it turns clustering on, needs
	// DatabaseURL, and excludes ClusterAddr and ClusterPeers.
	NATSURL string
	// NodeID names the node in the cluster, unique within it. Empty: the host name and
	// a random suffix.
	NodeID string

	// Registry receives every metric. Nil: a new one (served at /metrics).
	Registry *prometheus.Registry
	// Log receives the node's logs. Nil: slog.Default().
	Log *slog.Logger
}

// OptionError is an Options field that is wrong. Option is the field's name, with the
// field of a nested struct after a dot ("SMTP.Addr").
type OptionError struct {
	Option string
	Err    error
}

func (e *OptionError) Error() string { return e.Option + ": " + e.Err.Error() }
func (e *OptionError) Unwrap() error { return e.Err }

// ErrNoCredentials is the Err of the OptionError for JWTSecret when neither it nor JWKS
// is set. Validate reports it only when every other field is valid.
var ErrNoCredentials = errors.New("a JWT secret or a JWKS is required")

// MinSecretBytes is the shortest JWTSecret and WSTokenSecret accepted: 256 bits, what
// HS256 and HMAC-SHA256 need.
const MinSecretBytes = 32

// The defaults, as the README's configuration table gives them.
const (
	defaultDataDir             = "./data"
	defaultDBMaxConns          = 16
	defaultBatchMax            = 1000
	defaultUserRate            = 10
	defaultUserBurst           = 50
	defaultServiceRate         = 10000
	defaultServiceBurst        = 20000
	defaultUserReadRate        = 20
	defaultUserReadBurst       = 100
	defaultWSMaxPerUser        = 64
	defaultWSQueue             = 256
	defaultWSWriteTimeout      = 10 * time.Second
	defaultWSPingInterval      = 25 * time.Second
	defaultWSReadLimit         = 4096
	defaultWSFrameRate         = 50
	defaultWSFrameBurst        = 100
	defaultHTTPMaxHeaderBytes  = 64 << 10
	defaultDeliveryMaxAttempts = 8
	defaultDeliveryBackoff     = 5 * time.Second
	defaultDeliveryBackoffMax  = time.Hour
	defaultDeliveryTimeout     = 30 * time.Second
	defaultDeliveryConcurrency = 16
	defaultDeliveryPoll        = time.Second

	minWSReadLimit       = 256
	minBodyBytesInFlight = 1 << 20
)

// WithDefaults returns o with each zero field that has a default set to it: the
// options Open runs with. Registry and Log stay as they are.
func (o Options) WithDefaults() Options {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defRate := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if o.DataDir == "" {
		o.DataDir = defaultDataDir
	}
	if o.DBMaxConns == 0 {
		o.DBMaxConns = defaultDBMaxConns
	}
	def(&o.LogRetention, persistence.DefaultRetention)
	def(&o.JWKSMaxAge, auth.DefaultJWKSMaxAge)
	def(&o.WSTokenTTL, auth.DefaultWSTokenTTL)
	defInt(&o.MaxPayload, herald.DefaultMaxPayload)
	defInt(&o.BatchMax, defaultBatchMax)
	if o.CommitsInFlight == 0 {
		o.CommitsInFlight = 1
		if o.DatabaseURL != "" {
			// A PostgreSQL commit waits on the server's flush: a second one in flight
			// writes the next batch meanwhile.
			o.CommitsInFlight = 2
		}
	}
	defRate(&o.UserRate, defaultUserRate)
	defInt(&o.UserBurst, defaultUserBurst)
	defRate(&o.ServiceRate, defaultServiceRate)
	defInt(&o.ServiceBurst, defaultServiceBurst)
	defRate(&o.UserReadRate, defaultUserReadRate)
	defInt(&o.UserReadBurst, defaultUserReadBurst)
	if o.BodyBytesInFlight == 0 {
		o.BodyBytesInFlight = api.DefaultBodyBytesInFlight
	}
	defInt(&o.WSMaxPerUser, defaultWSMaxPerUser)
	defInt(&o.WSQueue, defaultWSQueue)
	def(&o.WSWriteTimeout, defaultWSWriteTimeout)
	def(&o.WSPingInterval, defaultWSPingInterval)
	if o.WSReadLimit == 0 {
		o.WSReadLimit = defaultWSReadLimit
	}
	defRate(&o.WSFrameRate, defaultWSFrameRate)
	defInt(&o.WSFrameBurst, defaultWSFrameBurst)
	def(&o.HTTPReadTimeout, api.DefaultReadTimeout)
	def(&o.HTTPIdleTimeout, api.DefaultIdleTimeout)
	def(&o.HTTPWriteTimeout, api.DefaultWriteTimeout)
	defInt(&o.HTTPMaxHeaderBytes, defaultHTTPMaxHeaderBytes)
	defInt(&o.DeliveryMaxAttempts, defaultDeliveryMaxAttempts)
	def(&o.DeliveryBackoff, defaultDeliveryBackoff)
	def(&o.DeliveryBackoffMax, defaultDeliveryBackoffMax)
	def(&o.DeliveryTimeout, defaultDeliveryTimeout)
	defInt(&o.DeliveryConcurrency, defaultDeliveryConcurrency)
	def(&o.DeliveryPoll, defaultDeliveryPoll)
	if o.SMTP.StartTLS == "" {
		o.SMTP.StartTLS = email.StartTLSAuto
	}
	if o.smtp() {
		def(&o.SMTP.Timeout, o.DeliveryTimeout)
	}
	return o
}

// smtp reports whether the email channel is configured.
func (o *Options) smtp() bool { return o.SMTP.Addr != "" || o.SMTP.From != "" }

// Validate reports the first field of o (with its defaults) that Open would refuse, as
// an *OptionError; it opens nothing, but reads the rules file. ErrNoCredentials comes
// last, so that a caller that fills the credentials later can check the rest first.
func (o Options) Validate() error {
	o = o.WithDefaults()
	_, err := o.check()
	return err
}

// check validates o, which has its defaults, and returns the rules it loaded.
func (o *Options) check() (*rules.Set, error) {
	positive := []struct {
		name string
		v    time.Duration
	}{
		{"LogRetention", o.LogRetention}, {"JWKSMaxAge", o.JWKSMaxAge}, {"WSTokenTTL", o.WSTokenTTL},
		{"WSWriteTimeout", o.WSWriteTimeout}, {"WSPingInterval", o.WSPingInterval},
		{"HTTPReadTimeout", o.HTTPReadTimeout}, {"HTTPIdleTimeout", o.HTTPIdleTimeout}, {"HTTPWriteTimeout", o.HTTPWriteTimeout},
		{"DeliveryBackoff", o.DeliveryBackoff}, {"DeliveryTimeout", o.DeliveryTimeout},
		{"DeliveryPoll", o.DeliveryPoll},
	}
	for _, f := range positive {
		if f.v < 0 {
			return nil, optionErr(f.name, "must be positive")
		}
	}
	switch {
	case o.JWTMaxTTL < 0:
		return nil, optionErr("JWTMaxTTL", "must not be negative (zero: not checked)")
	case o.BatchDelay < 0:
		return nil, optionErr("BatchDelay", "must not be negative (zero: no wait)")
	case o.CommitsInFlight < 0:
		return nil, optionErr("CommitsInFlight", "must not be negative (zero: 2 on PostgreSQL, 1 on the embedded store)")
	}
	atLeast := []struct {
		name   string
		v, min int64
		unit   string
	}{
		{"DBMaxConns", int64(o.DBMaxConns), 1, ""}, {"MaxPayload", int64(o.MaxPayload), 1, ""},
		{"BatchMax", int64(o.BatchMax), 1, ""},
		{"UserBurst", int64(o.UserBurst), 1, ""}, {"ServiceBurst", int64(o.ServiceBurst), 1, ""},
		{"UserReadBurst", int64(o.UserReadBurst), 1, ""},
		{"BodyBytesInFlight", o.BodyBytesInFlight, minBodyBytesInFlight, " bytes (1 MiB)"},
		{"WSMaxPerUser", int64(o.WSMaxPerUser), 1, ""}, {"WSQueue", int64(o.WSQueue), 1, ""},
		{"WSReadLimit", o.WSReadLimit, minWSReadLimit, " bytes"}, {"WSFrameBurst", int64(o.WSFrameBurst), 1, ""},
		{"HTTPMaxHeaderBytes", int64(o.HTTPMaxHeaderBytes), api.MinHeaderBytes, " bytes"},
		{"DeliveryMaxAttempts", int64(o.DeliveryMaxAttempts), 1, ""},
		{"DeliveryConcurrency", int64(o.DeliveryConcurrency), 1, ""},
	}
	for _, f := range atLeast {
		if f.v < f.min {
			if f.min == 1 {
				return nil, optionErr(f.name, "must be positive")
			}
			return nil, optionErr(f.name, "must be at least %d%s", f.min, f.unit)
		}
	}
	rates := []struct {
		name string
		v    float64
	}{{"UserRate", o.UserRate}, {"ServiceRate", o.ServiceRate}, {"UserReadRate", o.UserReadRate}, {"WSFrameRate", o.WSFrameRate}}
	for _, f := range rates {
		if !(f.v >= 0) { // NaN too
			return nil, optionErr(f.name, "must be a number per second, not negative")
		}
	}
	if o.DeliveryBackoffMax < o.DeliveryBackoff {
		return nil, optionErr("DeliveryBackoffMax", "%s is shorter than the first retry delay, %s", o.DeliveryBackoffMax, o.DeliveryBackoff)
	}
	for _, secret := range []struct {
		name string
		v    []byte
		why  string
	}{
		{"JWTSecret", o.JWTSecret, " (HS256 is only as strong as its secret)"},
		{"WSTokenSecret", o.WSTokenSecret, ""},
	} {
		if len(secret.v) > 0 && len(secret.v) < MinSecretBytes {
			return nil, optionErr(secret.name, "must be at least %d bytes%s", MinSecretBytes, secret.why)
		}
	}
	if err := auth.CheckJWKS(o.JWKS); err != nil {
		return nil, &OptionError{"JWKS", err}
	}
	for _, origin := range o.AllowedOrigins {
		if strings.TrimSpace(origin) != "" && !api.ValidOrigin(origin) {
			return nil, optionErr("AllowedOrigins", "%q is not an origin (scheme://host[:port], with * for one host label or the port) or \"*\"", origin)
		}
	}
	if _, err := api.ConnLimit(o.MaxConns); err != nil {
		return nil, &OptionError{"MaxConns", err}
	}
	if o.smtp() {
		switch {
		case o.SMTP.Addr == "":
			return nil, optionErr("SMTP.Addr", "the server is required with a sender: both or neither")
		case o.SMTP.From == "":
			return nil, optionErr("SMTP.From", "the sender is required with a server: both or neither")
		}
		if _, err := email.New(o.SMTP); err != nil {
			var oe *email.OptionError
			if errors.As(err, &oe) {
				return nil, &OptionError{"SMTP." + oe.Option, oe.Err}
			}
			return nil, &OptionError{"SMTP", err}
		}
	}
	if len(o.WebhookURLs) > 0 {
		if o.WebhookSecret == "" {
			return nil, optionErr("WebhookSecret", "is required with webhook URLs (whsec_<base64> or at least %d bytes)", webhook.MinRawSecretBytes)
		}
		if _, err := webhook.ParseSecret(o.WebhookSecret); err != nil {
			return nil, &OptionError{"WebhookSecret", err}
		}
	}
	if err := o.checkCluster(); err != nil {
		return nil, err
	}
	set, err := loadRules(o)
	if err != nil {
		return nil, err
	}
	if len(o.JWTSecret) == 0 && o.JWKS == "" {
		return nil, &OptionError{"JWTSecret", ErrNoCredentials}
	}
	return set, nil
}

// clustered reports whether the node joins a cluster.
func (o *Options) clustered() bool { return o.ClusterAddr != "" || o.NATSURL != "" }

func (o *Options) checkCluster() error {
	switch {
	case len(o.ClusterPeers) > 0 && o.ClusterAddr == "" && o.NATSURL == "":
		return optionErr("ClusterPeers", "need a cluster address for this node as well")
	case o.NATSURL != "" && (o.ClusterAddr != "" || len(o.ClusterPeers) > 0):
		return optionErr("NATSURL", "excludes a cluster address and peers: with an external NATS no server is embedded")
	case o.clustered() && o.DatabaseURL == "":
		return optionErr("DatabaseURL", "is required with cluster settings: the embedded store is single-node, and clustered nodes share one PostgreSQL database")
	case o.clustered() && len(o.WSTokenSecret) == 0 && len(o.JWTSecret) == 0:
		// Without either, each node would sign ws-tokens with a random key of its own.
		return optionErr("WSTokenSecret", "is required in a cluster whose user JWTs are verified with a JWKS: every node must sign ws-tokens (and authenticate its routes) with the same secret")
	case len(o.NodeID) > 64 || strings.ContainsFunc(o.NodeID, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return optionErr("NodeID", "must be at most 64 characters, without spaces or control characters")
	}
	for _, a := range append([]string{o.ClusterAddr}, o.ClusterPeers...) {
		if a == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
			name := "ClusterAddr"
			if a != o.ClusterAddr {
				name = "ClusterPeers"
			}
			return optionErr(name, "%q is not host:port", a)
		}
	}
	return nil
}

func optionErr(option, format string, args ...any) *OptionError {
	return &OptionError{Option: option, Err: fmt.Errorf(format, args...)}
}

// The limits as the packages below take them: a lifted limit is a zero rate for api
// and a negative one for ws.
func apiRate(per float64, burst int) api.Rate {
	if math.IsInf(per, 1) {
		return api.Rate{}
	}
	return api.Rate{Per: per, Burst: burst}
}

func wsFrameRate(per float64) float64 {
	if math.IsInf(per, 1) {
		return -1
	}
	return per
}
