package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/api/auth"
)

// config is Herald's configuration, read from the environment. The README's
// configuration table lists the same variables with the same defaults.
type config struct {
	Addr            string        `env:"HERALD_ADDR" envDefault:"127.0.0.1:8080"`
	DatabaseURL     string        `env:"HERALD_DATABASE_URL"`
	DataDir         string        `env:"HERALD_DATA_DIR" envDefault:"./data"`
	JWTSecret       string        `env:"HERALD_JWT_SECRET"`
	JWKS            string        `env:"HERALD_JWKS"`
	JWKSMaxAge      time.Duration `env:"HERALD_JWKS_MAX_AGE" envDefault:"10m"`
	JWTAudience     string        `env:"HERALD_JWT_AUDIENCE"`
	JWTMaxTTL       time.Duration `env:"HERALD_JWT_MAX_TTL"`
	APIKeys         []string      `env:"HERALD_API_KEYS" envSeparator:","`
	WSTokenSecret   string        `env:"HERALD_WS_TOKEN_SECRET"`
	WSTokenTTL      time.Duration `env:"HERALD_WS_TOKEN_TTL" envDefault:"60s"`
	LogRetention    time.Duration `env:"HERALD_LOG_RETENTION" envDefault:"720h"`
	MaxPayload      int           `env:"HERALD_MAX_PAYLOAD" envDefault:"16384"`
	BatchMax        int           `env:"HERALD_BATCH_MAX" envDefault:"1000"`
	BatchDelay      time.Duration `env:"HERALD_BATCH_DELAY" envDefault:"0s"`
	CommitsInFlight int           `env:"HERALD_COMMITS_IN_FLIGHT"`
	DBMaxConns      int32         `env:"HERALD_DB_MAX_CONNS" envDefault:"16"`
	UserRate        float64       `env:"HERALD_USER_RATE" envDefault:"10"`
	UserBurst       int           `env:"HERALD_USER_BURST" envDefault:"50"`
	ServiceRate     float64       `env:"HERALD_SERVICE_RATE" envDefault:"10000"`
	ServiceBurst    int           `env:"HERALD_SERVICE_BURST" envDefault:"20000"`
	UserReadRate    float64       `env:"HERALD_USER_READ_RATE" envDefault:"20"`
	UserReadBurst   int           `env:"HERALD_USER_READ_BURST" envDefault:"100"`
	BodyInFlight    int64         `env:"HERALD_BODY_BYTES_IN_FLIGHT" envDefault:"67108864"`
	AllowedOrigins  []string      `env:"HERALD_ALLOWED_ORIGINS" envSeparator:","`
	WSMaxPerUser    int           `env:"HERALD_WS_MAX_PER_USER" envDefault:"64"`
	WSQueue         int           `env:"HERALD_WS_QUEUE" envDefault:"256"`
	WSWriteTimeout  time.Duration `env:"HERALD_WS_WRITE_TIMEOUT" envDefault:"10s"`
	WSPingInterval  time.Duration `env:"HERALD_WS_PING_INTERVAL" envDefault:"25s"`
	WSReadLimit     int64         `env:"HERALD_WS_READ_LIMIT" envDefault:"4096"`
	WSFrameRate     float64       `env:"HERALD_WS_FRAME_RATE" envDefault:"50"`
	WSFrameBurst    int           `env:"HERALD_WS_FRAME_BURST" envDefault:"100"`
	ShutdownTimeout time.Duration `env:"HERALD_SHUTDOWN_TIMEOUT" envDefault:"10s"`
	HTTPReadTimeout time.Duration `env:"HERALD_HTTP_READ_TIMEOUT" envDefault:"30s"`
	HTTPIdleTimeout time.Duration `env:"HERALD_HTTP_IDLE_TIMEOUT" envDefault:"60s"`
	HTTPMaxHeader   int           `env:"HERALD_HTTP_MAX_HEADER_BYTES" envDefault:"65536"`
	MaxConns        int           `env:"HERALD_MAX_CONNS"`
	LogLevel        string        `env:"HERALD_LOG_LEVEL" envDefault:"info"`
	PprofAddr       string        `env:"HERALD_PPROF_ADDR"`
	Rules           string        `env:"HERALD_RULES"`
	SMTPAddr        string        `env:"HERALD_SMTP_ADDR"`
	SMTPFrom        string        `env:"HERALD_SMTP_FROM"`
	SMTPUsername    string        `env:"HERALD_SMTP_USERNAME"`
	SMTPPassword    string        `env:"HERALD_SMTP_PASSWORD"`
	SMTPStartTLS    string        `env:"HERALD_SMTP_STARTTLS" envDefault:"auto"`
	WebhookURLs     []string      `env:"HERALD_WEBHOOK_URLS" envSeparator:","`
	WebhookSecret   string        `env:"HERALD_WEBHOOK_SECRET"`
	DeliveryTries   int           `env:"HERALD_DELIVERY_MAX_ATTEMPTS" envDefault:"8"`
	DeliveryBackoff time.Duration `env:"HERALD_DELIVERY_BACKOFF" envDefault:"5s"`
	DeliveryMaxWait time.Duration `env:"HERALD_DELIVERY_BACKOFF_MAX" envDefault:"1h"`
	DeliveryTimeout time.Duration `env:"HERALD_DELIVERY_TIMEOUT" envDefault:"30s"`
	DeliveryWorkers int           `env:"HERALD_DELIVERY_CONCURRENCY" envDefault:"16"`
	DeliveryPoll    time.Duration `env:"HERALD_DELIVERY_POLL" envDefault:"1s"`
}

func loadConfig(environ []string) (config, error) {
	var c config
	vars := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			vars[k] = v
		}
	}
	if err := env.ParseWithOptions(&c, env.Options{Environment: vars}); err != nil {
		return c, configError(err)
	}
	keys := c.APIKeys[:0]
	for _, k := range c.APIKeys {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	c.APIKeys = keys
	origins := c.AllowedOrigins[:0]
	for _, o := range c.AllowedOrigins {
		if o = strings.TrimSpace(o); o == "" {
			continue
		}
		if !api.ValidOrigin(o) {
			return c, fmt.Errorf("configuration: HERALD_ALLOWED_ORIGINS: %q is not an origin (scheme://host[:port], with * for one host label or the port) or \"*\"", o)
		}
		origins = append(origins, o)
	}
	c.AllowedOrigins = origins
	urls := c.WebhookURLs[:0]
	for _, u := range c.WebhookURLs {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	c.WebhookURLs = urls
	switch {
	case c.LogRetention <= 0:
		return c, fmt.Errorf("configuration: HERALD_LOG_RETENTION must be positive")
	case c.MaxPayload <= 0:
		return c, fmt.Errorf("configuration: HERALD_MAX_PAYLOAD must be positive")
	case c.BatchMax <= 0:
		return c, fmt.Errorf("configuration: HERALD_BATCH_MAX must be positive")
	case c.WSTokenTTL <= 0:
		return c, fmt.Errorf("configuration: HERALD_WS_TOKEN_TTL must be positive")
	case c.JWKSMaxAge <= 0:
		return c, fmt.Errorf("configuration: HERALD_JWKS_MAX_AGE must be positive")
	case c.JWTMaxTTL < 0:
		return c, fmt.Errorf("configuration: HERALD_JWT_MAX_TTL must not be negative (unset or 0: not checked)")
	case c.CommitsInFlight < 0:
		return c, fmt.Errorf("configuration: HERALD_COMMITS_IN_FLIGHT must not be negative (unset or 0: 2 on PostgreSQL, 1 on the embedded store)")
	case c.BatchDelay < 0:
		return c, fmt.Errorf("configuration: HERALD_BATCH_DELAY must not be negative")
	case c.ShutdownTimeout <= 0:
		return c, fmt.Errorf("configuration: HERALD_SHUTDOWN_TIMEOUT must be positive")
	case c.HTTPReadTimeout <= 0:
		return c, fmt.Errorf("configuration: HERALD_HTTP_READ_TIMEOUT must be positive")
	case c.HTTPIdleTimeout <= 0:
		return c, fmt.Errorf("configuration: HERALD_HTTP_IDLE_TIMEOUT must be positive")
	case c.HTTPMaxHeader < api.MinHeaderBytes:
		return c, fmt.Errorf("configuration: HERALD_HTTP_MAX_HEADER_BYTES must be at least %d", api.MinHeaderBytes)
	case c.MaxConns < 0:
		return c, fmt.Errorf("configuration: HERALD_MAX_CONNS must not be negative (unset or 0: derived from the file limit)")
	case c.UserRate < 0 || c.UserBurst < 1:
		return c, fmt.Errorf("configuration: HERALD_USER_RATE must not be negative and HERALD_USER_BURST must be at least 1")
	case c.UserReadRate < 0 || c.UserReadBurst < 1:
		return c, fmt.Errorf("configuration: HERALD_USER_READ_RATE must not be negative and HERALD_USER_READ_BURST must be at least 1")
	case c.BodyInFlight < 1<<20:
		return c, fmt.Errorf("configuration: HERALD_BODY_BYTES_IN_FLIGHT must be at least 1048576 (1 MiB)")
	case c.ServiceRate < 0 || c.ServiceBurst < 1:
		return c, fmt.Errorf("configuration: HERALD_SERVICE_RATE must not be negative and HERALD_SERVICE_BURST must be at least 1")
	case c.WSMaxPerUser <= 0:
		return c, fmt.Errorf("configuration: HERALD_WS_MAX_PER_USER must be positive")
	case c.WSQueue <= 0:
		return c, fmt.Errorf("configuration: HERALD_WS_QUEUE must be positive")
	case c.WSWriteTimeout <= 0:
		return c, fmt.Errorf("configuration: HERALD_WS_WRITE_TIMEOUT must be positive")
	case c.WSPingInterval <= 0:
		return c, fmt.Errorf("configuration: HERALD_WS_PING_INTERVAL must be positive")
	case c.WSReadLimit < 256:
		return c, fmt.Errorf("configuration: HERALD_WS_READ_LIMIT must be at least 256 bytes")
	case !(c.WSFrameRate >= 0 && c.WSFrameRate <= math.MaxFloat64) || c.WSFrameBurst < 1:
		return c, fmt.Errorf("configuration: HERALD_WS_FRAME_RATE must be a number of frames per second, not negative (0: no limit), and HERALD_WS_FRAME_BURST at least 1")
	case c.DeliveryTries < 1:
		return c, fmt.Errorf("configuration: HERALD_DELIVERY_MAX_ATTEMPTS must be at least 1")
	case c.DeliveryBackoff <= 0 || c.DeliveryMaxWait < c.DeliveryBackoff:
		return c, fmt.Errorf("configuration: HERALD_DELIVERY_BACKOFF must be positive and at most HERALD_DELIVERY_BACKOFF_MAX")
	case c.DeliveryTimeout <= 0 || c.DeliveryPoll <= 0 || c.DeliveryWorkers <= 0:
		return c, fmt.Errorf("configuration: HERALD_DELIVERY_TIMEOUT, HERALD_DELIVERY_POLL and HERALD_DELIVERY_CONCURRENCY must be positive")
	case (c.SMTPAddr == "") != (c.SMTPFrom == ""):
		return c, fmt.Errorf("configuration: HERALD_SMTP_ADDR and HERALD_SMTP_FROM go together")
	case len(c.WebhookURLs) > 0 && c.WebhookSecret == "":
		return c, fmt.Errorf("configuration: HERALD_WEBHOOK_URLS needs HERALD_WEBHOOK_SECRET (whsec_<base64> or at least 32 bytes)")
	case c.DBMaxConns <= 0:
		return c, fmt.Errorf("configuration: HERALD_DB_MAX_CONNS must be positive")
	case c.JWTSecret != "" && len(c.JWTSecret) < minSecret:
		return c, fmt.Errorf("configuration: HERALD_JWT_SECRET must be at least %d bytes (HS256 is only as strong as its secret)", minSecret)
	case c.WSTokenSecret != "" && len(c.WSTokenSecret) < minSecret:
		return c, fmt.Errorf("configuration: HERALD_WS_TOKEN_SECRET must be at least %d bytes", minSecret)
	}
	if err := auth.CheckJWKS(c.JWKS); err != nil {
		return c, fmt.Errorf("configuration: HERALD_JWKS: %w", err)
	}
	if _, err := c.logLevel(); err != nil {
		return c, fmt.Errorf("configuration: HERALD_LOG_LEVEL: %w", err)
	}
	return c, nil
}

// configError names the variable of each value that failed to parse.
func configError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			if f, ok := reflect.TypeOf(config{}).FieldByName(pe.Name); ok {
				msgs = append(msgs, fmt.Sprintf("%s: not a valid %s: %v", f.Tag.Get("env"), pe.Type, errors.Unwrap(pe.Err)))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("configuration: %s", strings.Join(msgs, "; "))
}

// minSecret is the shortest HMAC secret accepted: 256 bits for HS256.
const minSecret = 32

func (c *config) logLevel() (slog.Level, error) {
	var l slog.Level
	err := l.UnmarshalText([]byte(c.LogLevel))
	return l, err
}
