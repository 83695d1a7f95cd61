package main

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/heraldhq/herald/node"
)

// config is Herald's configuration, read from the environment. The README's
// configuration table lists the same variables with the same defaults.
//
// It is also the one table from variables to node options: each field sets the
// node.Options field of the same name, or the one its option tag names ("-": a field
// of the command itself). Field names match their variables. Parsing a string into
// its type is env's job; what a value means is the node's (node.Options.Validate), and
// nodeError names the variable of the option it refuses.
type config struct {
	Addr                string        `env:"HERALD_ADDR" envDefault:"127.0.0.1:8080" option:"-"`
	DatabaseURL         string        `env:"HERALD_DATABASE_URL"`
	DataDir             string        `env:"HERALD_DATA_DIR" envDefault:"./data"`
	JWTSecret           string        `env:"HERALD_JWT_SECRET"`
	JWKS                string        `env:"HERALD_JWKS"`
	JWKSMaxAge          time.Duration `env:"HERALD_JWKS_MAX_AGE" envDefault:"10m"`
	JWTAudience         string        `env:"HERALD_JWT_AUDIENCE"`
	JWTMaxTTL           time.Duration `env:"HERALD_JWT_MAX_TTL"`
	APIKeys             []string      `env:"HERALD_API_KEYS" envSeparator:","`
	WSTokenSecret       string        `env:"HERALD_WS_TOKEN_SECRET"`
	WSTokenTTL          time.Duration `env:"HERALD_WS_TOKEN_TTL" envDefault:"60s"`
	LogRetention        time.Duration `env:"HERALD_LOG_RETENTION" envDefault:"720h"`
	MaxPayload          int           `env:"HERALD_MAX_PAYLOAD" envDefault:"16384"`
	BatchMax            int           `env:"HERALD_BATCH_MAX" envDefault:"1000"`
	BatchDelay          time.Duration `env:"HERALD_BATCH_DELAY" envDefault:"0s"`
	CommitsInFlight     int           `env:"HERALD_COMMITS_IN_FLIGHT"`
	DBMaxConns          int32         `env:"HERALD_DB_MAX_CONNS" envDefault:"16"`
	UserRate            float64       `env:"HERALD_USER_RATE" envDefault:"10"`
	UserBurst           int           `env:"HERALD_USER_BURST" envDefault:"50"`
	ServiceRate         float64       `env:"HERALD_SERVICE_RATE" envDefault:"10000"`
	ServiceBurst        int           `env:"HERALD_SERVICE_BURST" envDefault:"20000"`
	UserReadRate        float64       `env:"HERALD_USER_READ_RATE" envDefault:"20"`
	UserReadBurst       int           `env:"HERALD_USER_READ_BURST" envDefault:"100"`
	BodyBytesInFlight   int64         `env:"HERALD_BODY_BYTES_IN_FLIGHT" envDefault:"67108864"`
	AllowedOrigins      []string      `env:"HERALD_ALLOWED_ORIGINS" envSeparator:","`
	WSMaxPerUser        int           `env:"HERALD_WS_MAX_PER_USER" envDefault:"64"`
	WSQueue             int           `env:"HERALD_WS_QUEUE" envDefault:"256"`
	WSWriteTimeout      time.Duration `env:"HERALD_WS_WRITE_TIMEOUT" envDefault:"10s"`
	WSPingInterval      time.Duration `env:"HERALD_WS_PING_INTERVAL" envDefault:"25s"`
	WSReadLimit         int64         `env:"HERALD_WS_READ_LIMIT" envDefault:"4096"`
	WSFrameRate         float64       `env:"HERALD_WS_FRAME_RATE" envDefault:"50"`
	WSFrameBurst        int           `env:"HERALD_WS_FRAME_BURST" envDefault:"100"`
	ShutdownTimeout     time.Duration `env:"HERALD_SHUTDOWN_TIMEOUT" envDefault:"10s" option:"-"`
	HTTPReadTimeout     time.Duration `env:"HERALD_HTTP_READ_TIMEOUT" envDefault:"30s"`
	HTTPIdleTimeout     time.Duration `env:"HERALD_HTTP_IDLE_TIMEOUT" envDefault:"60s"`
	HTTPWriteTimeout    time.Duration `env:"HERALD_HTTP_WRITE_TIMEOUT" envDefault:"30s"`
	HTTPMaxHeaderBytes  int           `env:"HERALD_HTTP_MAX_HEADER_BYTES" envDefault:"65536"`
	MaxConns            int           `env:"HERALD_MAX_CONNS"`
	LogLevel            slog.Level    `env:"HERALD_LOG_LEVEL" envDefault:"info" option:"-"`
	PprofAddr           string        `env:"HERALD_PPROF_ADDR" option:"-"`
	Rules               string        `env:"HERALD_RULES" option:"RulesFile"`
	SMTPAddr            string        `env:"HERALD_SMTP_ADDR" option:"SMTP.Addr"`
	SMTPFrom            string        `env:"HERALD_SMTP_FROM" option:"SMTP.From"`
	SMTPUsername        string        `env:"HERALD_SMTP_USERNAME" option:"SMTP.Username"`
	SMTPPassword        string        `env:"HERALD_SMTP_PASSWORD" option:"SMTP.Password"`
	SMTPStartTLS        string        `env:"HERALD_SMTP_STARTTLS" envDefault:"auto" option:"SMTP.StartTLS"`
	WebhookURLs         []string      `env:"HERALD_WEBHOOK_URLS" envSeparator:","`
	WebhookSecret       string        `env:"HERALD_WEBHOOK_SECRET"`
	DeliveryMaxAttempts int           `env:"HERALD_DELIVERY_MAX_ATTEMPTS" envDefault:"8"`
	DeliveryBackoff     time.Duration `env:"HERALD_DELIVERY_BACKOFF" envDefault:"5s"`
	DeliveryBackoffMax  time.Duration `env:"HERALD_DELIVERY_BACKOFF_MAX" envDefault:"1h"`
	DeliveryTimeout     time.Duration `env:"HERALD_DELIVERY_TIMEOUT" envDefault:"30s"`
	DeliveryConcurrency int           `env:"HERALD_DELIVERY_CONCURRENCY" envDefault:"16"`
	DeliveryPoll        time.Duration `env:"HERALD_DELIVERY_POLL" envDefault:"1s"`
	ClusterAddr         string        `env:"HERALD_CLUSTER_ADDR"`
	ClusterPeers        []string      `env:"HERALD_CLUSTER_PEERS" envSeparator:","`
	NATSURL             string        `env:"HERALD_NATS_URL"`
	NodeID              string        `env:"HERALD_NODE_ID"`
}

// loadConfig parses the environment into a config. It checks no value's meaning but
// HERALD_SHUTDOWN_TIMEOUT's, which is the command's own; checkConfig has the node check
// the rest.
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
	c.APIKeys, c.AllowedOrigins, c.WebhookURLs = trimList(c.APIKeys), trimList(c.AllowedOrigins), trimList(c.WebhookURLs)
	c.ClusterPeers = trimList(c.ClusterPeers)
	if c.ShutdownTimeout <= 0 {
		return c, errors.New("configuration: HERALD_SHUTDOWN_TIMEOUT must be positive")
	}
	return c, nil
}

// checkConfig loads the configuration and checks every value as node.Open will, without
// opening anything: serve, token and migrate refuse a bad value before they do
// anything else. A missing JWT secret is left to node.Open, since --dev supplies one.
func checkConfig(environ []string) (config, error) {
	c, err := loadConfig(environ)
	if err != nil {
		return c, err
	}
	if err := nodeOptions(&c, nil, nil).Validate(); err != nil && !errors.Is(err, node.ErrNoCredentials) {
		return c, nodeError(err)
	}
	return c, nil
}

// trimList drops the blanks around and between the items of a comma-separated list.
func trimList(items []string) []string {
	kept := items[:0]
	for _, s := range items {
		if s = strings.TrimSpace(s); s != "" {
			kept = append(kept, s)
		}
	}
	return kept
}

// variable names the variable that sets a node option, as the config's table has it.
func variable(option string) (string, bool) {
	t := reflect.TypeOf(config{})
	for i := range t.NumField() {
		f := t.Field(i)
		if optionOf(f) == option {
			return f.Tag.Get("env"), true
		}
	}
	return "", false
}

// optionOf is the node option a config field sets: its option tag, else its name.
func optionOf(f reflect.StructField) string {
	if o, ok := f.Tag.Lookup("option"); ok {
		return o
	}
	return f.Name
}

// nodeError names the variable of the option the node refused. ErrNoCredentials is
// told in the command's terms.
func nodeError(err error) error {
	if errors.Is(err, node.ErrNoCredentials) {
		return errors.New("HERALD_JWT_SECRET or HERALD_JWKS is required (or run with --dev)")
	}
	var oe *node.OptionError
	if errors.As(err, &oe) {
		if v, ok := variable(oe.Option); ok {
			return fmt.Errorf("%s: %w", v, oe.Err)
		}
	}
	return err
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
				why := pe.Err
				if inner := errors.Unwrap(why); inner != nil {
					why = inner
				}
				msgs = append(msgs, fmt.Sprintf("%s: not a valid %s: %v", f.Tag.Get("env"), pe.Type, why))
				continue
			}
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("configuration: %s", strings.Join(msgs, "; "))
}
