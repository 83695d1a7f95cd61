package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/heraldhq/herald/node"
)

// notFromVariables are the node options no HERALD_ variable sets, and why.
var notFromVariables = map[string]string{
	"Rules":          "the rules document itself, for embedders; HERALD_RULES is RulesFile",
	"Registry":       "serve makes the registry",
	"Log":            "serve makes the logger (HERALD_LOG_LEVEL)",
	"SMTP.Timeout":   "zero: HERALD_DELIVERY_TIMEOUT",
	"SMTP.HelloName": "the host name",
	"SMTP.TLSConfig": "the system's roots",
}

// nodeOptionNames lists the fields of node.Options, with a nested struct's as "SMTP.Addr".
func nodeOptionNames() []string {
	var names []string
	t := reflect.TypeOf(node.Options{})
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "" && f.Type.Name() == "Options" {
			for j := range f.Type.NumField() {
				names = append(names, f.Name+"."+f.Type.Field(j).Name)
			}
			continue
		}
		names = append(names, f.Name)
	}
	return names
}

// TestEveryOptionHasAVariable: the config is the one table from variables to node
// options. Every node option is set by a variable (or is listed above with the
// reason it is not), every variable's option exists, and field names match their
// variables.
func TestEveryOptionHasAVariable(t *testing.T) {
	options := map[string]bool{}
	for _, name := range nodeOptionNames() {
		options[name] = true
		if _, ok := variable(name); !ok && notFromVariables[name] == "" {
			t.Errorf("node.Options.%s has no HERALD_ variable in config, and is not in notFromVariables", name)
		}
	}
	ct := reflect.TypeOf(config{})
	for i := range ct.NumField() {
		f := ct.Field(i)
		v := f.Tag.Get("env")
		if o := optionOf(f); o != "-" && !options[o] {
			t.Errorf("config.%s (%s) sets node option %q, which does not exist", f.Name, v, o)
		}
		if want := "HERALD_" + snake(f.Name); want != v && !nameExceptions[f.Name] {
			t.Errorf("config.%s is %s; its name says %s", f.Name, v, want)
		}
	}
}

// nameExceptions are fields whose variable's spelling no camel case gives.
var nameExceptions = map[string]bool{"SMTPStartTLS": true, "WebhookURLs": true, "NATSURL": true}

// snake spells a Go name as a variable: JWTMaxTTL is JWT_MAX_TTL.
func snake(name string) string {
	r := []rune(name)
	var b strings.Builder
	for i, c := range r {
		if i > 0 && unicode.IsUpper(c) && (unicode.IsLower(r[i-1]) || i+1 < len(r) && unicode.IsLower(r[i+1])) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(c))
	}
	return b.String()
}

// TestEveryVariableNamedInErrors sets each variable that can be wrong to a bad value
// and finds the variable named in the error, as `herald serve` prints it. It is
// driven by the config's table: a new variable with neither a bad value here nor a
// reason why it cannot be wrong fails the test.
func TestEveryVariableNamedInErrors(t *testing.T) {
	notAFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notAFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	smtp := []string{"HERALD_SMTP_ADDR=127.0.0.1:2525", "HERALD_SMTP_FROM=Herald <noreply@example.com>"}
	hooks := []string{"HERALD_WEBHOOK_URLS=http://127.0.0.1:1/"}
	type bad struct {
		value  string
		with   []string // other variables the value needs to be checked at all
		atOpen bool     // refused only when serve opens the store or listens
	}
	pg := []string{"HERALD_DATABASE_URL=postgres://127.0.0.1:1/herald"}
	clustered := append([]string{"HERALD_CLUSTER_ADDR=127.0.0.1:0"}, pg...)
	cases := map[string][]bad{
		"HERALD_ADDR":                  {{value: "no-port", atOpen: true}},
		"HERALD_DATABASE_URL":          {{value: "postgres://127.0.0.1:1/herald?connect_timeout=5", atOpen: true}},
		"HERALD_DATA_DIR":              {{value: filepath.Join(notAFile, "data"), atOpen: true}},
		"HERALD_JWT_SECRET":            {{value: "short"}},
		"HERALD_JWKS":                  {{value: "http://issuer.example/jwks.json"}, {value: filepath.Join(notAFile, "none.json"), atOpen: true}},
		"HERALD_JWKS_MAX_AGE":          {{value: "0s"}, {value: "-1m"}, {value: "soon"}},
		"HERALD_JWT_MAX_TTL":           {{value: "-1h"}},
		"HERALD_WS_TOKEN_SECRET":       {{value: "short"}},
		"HERALD_WS_TOKEN_TTL":          {{value: "0s"}},
		"HERALD_LOG_RETENTION":         {{value: "0s"}, {value: "-1h"}},
		"HERALD_MAX_PAYLOAD":           {{value: "0"}, {value: "-1"}},
		"HERALD_BATCH_MAX":             {{value: "0"}},
		"HERALD_BATCH_DELAY":           {{value: "-1ms"}},
		"HERALD_COMMITS_IN_FLIGHT":     {{value: "-1"}},
		"HERALD_DB_MAX_CONNS":          {{value: "0"}},
		"HERALD_USER_RATE":             {{value: "-1"}, {value: "NaN"}},
		"HERALD_USER_BURST":            {{value: "0"}},
		"HERALD_SERVICE_RATE":          {{value: "-0.5"}},
		"HERALD_SERVICE_BURST":         {{value: "-3"}},
		"HERALD_USER_READ_RATE":        {{value: "NaN"}},
		"HERALD_USER_READ_BURST":       {{value: "0"}},
		"HERALD_BODY_BYTES_IN_FLIGHT":  {{value: "0"}, {value: "1000"}},
		"HERALD_ALLOWED_ORIGINS":       {{value: "https://ok.example, app.example.com"}},
		"HERALD_WS_MAX_PER_USER":       {{value: "0"}},
		"HERALD_WS_QUEUE":              {{value: "0"}},
		"HERALD_WS_WRITE_TIMEOUT":      {{value: "0s"}},
		"HERALD_WS_PING_INTERVAL":      {{value: "-1s"}},
		"HERALD_WS_READ_LIMIT":         {{value: "255"}},
		"HERALD_WS_FRAME_RATE":         {{value: "-1"}},
		"HERALD_WS_FRAME_BURST":        {{value: "0"}},
		"HERALD_SHUTDOWN_TIMEOUT":      {{value: "0s"}},
		"HERALD_HTTP_READ_TIMEOUT":     {{value: "0s"}},
		"HERALD_HTTP_IDLE_TIMEOUT":     {{value: "0s"}},
		"HERALD_HTTP_WRITE_TIMEOUT":    {{value: "0s"}},
		"HERALD_HTTP_MAX_HEADER_BYTES": {{value: "8191"}},
		"HERALD_MAX_CONNS":             {{value: "-1"}, {value: "1000000000"}},
		"HERALD_LOG_LEVEL":             {{value: "loud"}},
		"HERALD_PPROF_ADDR":            {{value: "no-port", atOpen: true}},
		"HERALD_RULES":                 {{value: filepath.Join(notAFile, "rules.yaml")}},
		"HERALD_SMTP_ADDR":             {{value: "127.0.0.1", with: smtp[1:]}, {value: "", with: smtp[1:]}},
		"HERALD_SMTP_FROM":             {{value: "not an address", with: smtp[:1]}, {value: "", with: smtp[:1]}},
		"HERALD_SMTP_PASSWORD":         {{value: "pw", with: smtp}},
		"HERALD_SMTP_STARTTLS":         {{value: "sometimes", with: smtp}, {value: "never", with: append([]string{"HERALD_SMTP_USERNAME=u", "HERALD_SMTP_ADDR=smtp.example.com:587"}, smtp[1:]...)}},
		"HERALD_WEBHOOK_SECRET":        {{value: "", with: hooks}, {value: "short", with: hooks}},
		"HERALD_DELIVERY_MAX_ATTEMPTS": {{value: "0"}},
		"HERALD_DELIVERY_BACKOFF":      {{value: "0s"}},
		"HERALD_DELIVERY_BACKOFF_MAX":  {{value: "1s"}},
		"HERALD_DELIVERY_TIMEOUT":      {{value: "0s"}},
		"HERALD_DELIVERY_CONCURRENCY":  {{value: "0"}},
		"HERALD_DELIVERY_POLL":         {{value: "-1s"}},
		"HERALD_CLUSTER_ADDR":          {{value: "no-port", with: pg}},
		"HERALD_CLUSTER_PEERS":         {{value: "127.0.0.1:7000", with: pg}, {value: "no-port", with: clustered}},
		"HERALD_NATS_URL":              {{value: "nats://127.0.0.1:4222", with: clustered}},
		"HERALD_NODE_ID":               {{value: "two words", with: clustered}},
	}
	cannotBeWrong := map[string]string{
		"HERALD_JWT_AUDIENCE":  "any aud",
		"HERALD_API_KEYS":      "any key",
		"HERALD_SMTP_USERNAME": "any name; with HERALD_SMTP_STARTTLS=never, the STARTTLS variable is named",
		"HERALD_WEBHOOK_URLS":  "any URL is tried; one that cannot be reached fails its deliveries",
	}
	ct := reflect.TypeOf(config{})
	for i := range ct.NumField() {
		v := ct.Field(i).Tag.Get("env")
		if len(cases[v]) == 0 && cannotBeWrong[v] == "" {
			t.Errorf("%s: no bad value to test, and no reason it cannot be wrong", v)
		}
	}
	for v, bads := range cases {
		for _, b := range bads {
			environ := append([]string{"HERALD_JWT_SECRET=" + secret, "HERALD_ADDR=127.0.0.1:0", "HERALD_DATA_DIR=" + t.TempDir()}, b.with...)
			environ = append(environ, v+"="+b.value)
			var err error
			if b.atOpen {
				var errOut strings.Builder
				if rc := run(context.Background(), []string{"serve"}, environ, io.Discard, &errOut); rc == 0 {
					t.Errorf("%s=%q: serve exited 0", v, b.value)
					continue
				}
				err = errorString(errOut.String())
			} else if _, err = checkConfig(environ); err == nil {
				t.Errorf("%s=%q accepted", v, b.value)
				continue
			}
			t.Logf("%s=%q: %v", v, b.value, err)
			if !names(err, v) {
				t.Errorf("%s=%q: error does not name the variable: %v", v, b.value, err)
			}
		}
	}
}

// TestVariableDefaultsAreTheNodes: with no variable set, serve hands the node the
// options its zero value means: the envDefault tags and the node's defaults are the
// README's, once each.
func TestVariableDefaultsAreTheNodes(t *testing.T) {
	c, err := checkConfig([]string{"HERALD_JWT_SECRET=" + secret})
	if err != nil {
		t.Fatal(err)
	}
	got := nodeOptions(&c, nil, nil)
	want := node.Options{JWTSecret: got.JWTSecret, WSTokenSecret: got.WSTokenSecret}.WithDefaults()
	// CommitsInFlight has no default of its own: 0 is "by store" for both.
	if got = got.WithDefaults(); !reflect.DeepEqual(got, want) {
		t.Fatalf("serve's options with no variable set:\n got %+v\nwant %+v", got, want)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
