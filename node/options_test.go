package node_test

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/heraldhq/herald/actors/dispatch/email"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/node"
)

// TestValidateNamesTheOption: every value Open would refuse, Validate refuses without
// opening anything, with an *OptionError naming the field; Open refuses it too, before
// it creates the data directory.
func TestValidateNamesTheOption(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	secret := []byte(httpSecret)
	smtp := email.Options{Addr: "127.0.0.1:2525", From: "Herald <noreply@example.com>"}
	withSMTP := func(f func(*email.Options)) email.Options { s := smtp; f(&s); return s }
	for _, tc := range []struct {
		option string
		o      node.Options
	}{
		{"JWTSecret", node.Options{}},
		{"JWTSecret", node.Options{JWTSecret: []byte("short")}},
		{"WSTokenSecret", node.Options{WSTokenSecret: []byte("short")}},
		{"JWKS", node.Options{JWKS: "http://issuer.example/jwks.json"}},
		{"JWKSMaxAge", node.Options{JWKSMaxAge: -time.Second}},
		{"JWTMaxTTL", node.Options{JWTMaxTTL: -time.Hour}},
		{"WSTokenTTL", node.Options{WSTokenTTL: -time.Second}},
		{"AllowedOrigins", node.Options{AllowedOrigins: []string{"https://ok.example", "app.example.com"}}},
		{"DBMaxConns", node.Options{DBMaxConns: -1}},
		{"LogRetention", node.Options{LogRetention: -time.Hour}},
		{"MaxPayload", node.Options{MaxPayload: -1}},
		{"BatchMax", node.Options{BatchMax: -1}},
		{"BatchDelay", node.Options{BatchDelay: -time.Millisecond}},
		{"CommitsInFlight", node.Options{CommitsInFlight: -1}},
		{"UserRate", node.Options{UserRate: -1}},
		{"UserRate", node.Options{UserRate: math.NaN()}},
		{"UserBurst", node.Options{UserBurst: -1}},
		{"ServiceRate", node.Options{ServiceRate: math.Inf(-1)}},
		{"ServiceBurst", node.Options{ServiceBurst: -1}},
		{"UserReadRate", node.Options{UserReadRate: -0.5}},
		{"UserReadBurst", node.Options{UserReadBurst: -1}},
		{"BodyBytesInFlight", node.Options{BodyBytesInFlight: 1000}},
		{"BodyBytesInFlight", node.Options{BodyBytesInFlight: -1}},
		{"WSMaxPerUser", node.Options{WSMaxPerUser: -1}},
		{"WSQueue", node.Options{WSQueue: -1}},
		{"WSWriteTimeout", node.Options{WSWriteTimeout: -time.Second}},
		{"WSPingInterval", node.Options{WSPingInterval: -time.Second}},
		{"WSReadLimit", node.Options{WSReadLimit: 255}},
		{"WSFrameRate", node.Options{WSFrameRate: -1}},
		{"WSFrameBurst", node.Options{WSFrameBurst: -1}},
		{"HTTPReadTimeout", node.Options{HTTPReadTimeout: -time.Second}},
		{"HTTPIdleTimeout", node.Options{HTTPIdleTimeout: -time.Second}},
		{"HTTPMaxHeaderBytes", node.Options{HTTPMaxHeaderBytes: 100}},
		{"MaxConns", node.Options{MaxConns: -1}},
		{"MaxConns", node.Options{MaxConns: 1 << 30}},
		{"RulesFile", node.Options{RulesFile: filepath.Join(t.TempDir(), "missing.yaml")}},
		{"Rules", node.Options{Rules: []byte("rules: [{name: r}]")}},
		{"SMTP.Addr", node.Options{SMTP: email.Options{From: smtp.From}}},
		{"SMTP.From", node.Options{SMTP: email.Options{Addr: smtp.Addr}}},
		{"SMTP.Addr", node.Options{SMTP: withSMTP(func(s *email.Options) { s.Addr = "127.0.0.1" })}},
		{"SMTP.From", node.Options{SMTP: withSMTP(func(s *email.Options) { s.From = "not an address" })}},
		{"SMTP.StartTLS", node.Options{SMTP: withSMTP(func(s *email.Options) { s.StartTLS = "sometimes" })}},
		{"SMTP.Password", node.Options{SMTP: withSMTP(func(s *email.Options) { s.Password = "pw" })}},
		{"SMTP.Timeout", node.Options{SMTP: withSMTP(func(s *email.Options) { s.Timeout = -time.Second })}},
		{"WebhookSecret", node.Options{WebhookURLs: []string{"http://127.0.0.1:1/"}}},
		{"WebhookSecret", node.Options{WebhookURLs: []string{"http://127.0.0.1:1/"}, WebhookSecret: "short"}},
		{"DeliveryMaxAttempts", node.Options{DeliveryMaxAttempts: -1}},
		{"DeliveryBackoff", node.Options{DeliveryBackoff: -time.Second}},
		{"DeliveryBackoffMax", node.Options{DeliveryBackoffMax: time.Second}},
		{"DeliveryBackoffMax", node.Options{DeliveryBackoff: 2 * time.Hour}},
		{"DeliveryTimeout", node.Options{DeliveryTimeout: -time.Second}},
		{"DeliveryConcurrency", node.Options{DeliveryConcurrency: -1}},
		{"DeliveryPoll", node.Options{DeliveryPoll: -time.Second}},
	} {
		if tc.o.JWTSecret == nil && tc.option != "JWTSecret" {
			tc.o.JWTSecret = secret
		}
		var oe *node.OptionError
		if err := tc.o.Validate(); !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("Validate %+v: %v, want an *OptionError for %s", tc.o, err, tc.option)
			continue
		}
		dir := filepath.Join(t.TempDir(), "data")
		tc.o.DataDir, tc.o.Log = dir, quiet()
		if _, err := node.Open(context.Background(), tc.o); !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("Open with a bad %s: %v", tc.option, err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open with a bad %s created the data directory (%v)", tc.option, err)
		}
	}
	if err := (node.Options{JWTSecret: secret}).Validate(); err != nil {
		t.Fatalf("zero options with a secret: %v", err)
	}
	if err := (node.Options{}).Validate(); !errors.Is(err, node.ErrNoCredentials) {
		t.Fatalf("zero options: %v, want ErrNoCredentials", err)
	}
	// ErrNoCredentials comes last: a bad value is reported first.
	var oe *node.OptionError
	if err := (node.Options{WSQueue: -1}).Validate(); !errors.As(err, &oe) || oe.Option != "WSQueue" {
		t.Fatalf("no credentials and a bad WSQueue: %v", err)
	}
}

// TestZeroOptionsAreTheDefaults: the zero value of each option is the default of the
// README's configuration table.
func TestZeroOptionsAreTheDefaults(t *testing.T) {
	o := node.Options{}.WithDefaults()
	want := node.Options{
		DataDir: "./data", DBMaxConns: 16, LogRetention: 720 * time.Hour,
		JWKSMaxAge: 10 * time.Minute, WSTokenTTL: 60 * time.Second,
		MaxPayload: 16384, BatchMax: 1000, CommitsInFlight: 1,
		UserRate: 10, UserBurst: 50, ServiceRate: 10000, ServiceBurst: 20000,
		UserReadRate: 20, UserReadBurst: 100, BodyBytesInFlight: 64 << 20,
		WSMaxPerUser: 64, WSQueue: 256, WSWriteTimeout: 10 * time.Second, WSPingInterval: 25 * time.Second,
		WSReadLimit: 4096, WSFrameRate: 50, WSFrameBurst: 100,
		HTTPReadTimeout: 30 * time.Second, HTTPIdleTimeout: 60 * time.Second, HTTPMaxHeaderBytes: 65536,
		SMTP:                email.Options{StartTLS: email.StartTLSAuto},
		DeliveryMaxAttempts: 8, DeliveryBackoff: 5 * time.Second, DeliveryBackoffMax: time.Hour,
		DeliveryTimeout: 30 * time.Second, DeliveryConcurrency: 16, DeliveryPoll: time.Second,
	}
	if !equalOptions(o, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", o, want)
	}
	if pg := (node.Options{DatabaseURL: "postgres://x/y"}).WithDefaults(); pg.CommitsInFlight != 2 {
		t.Fatalf("CommitsInFlight on PostgreSQL: %d, want 2", pg.CommitsInFlight)
	}
	if s := (node.Options{SMTP: email.Options{Addr: "a:25", From: "a@b.c"}, DeliveryTimeout: 7 * time.Second}).WithDefaults(); s.SMTP.Timeout != 7*time.Second {
		t.Fatalf("SMTP.Timeout: %s, want DeliveryTimeout", s.SMTP.Timeout)
	}
	set := node.Options{UserRate: 3, WSQueue: 7, DeliveryBackoffMax: 2 * time.Hour}.WithDefaults()
	if set.UserRate != 3 || set.WSQueue != 7 || set.DeliveryBackoffMax != 2*time.Hour || set.UserBurst != 50 {
		t.Fatalf("set fields changed: %+v", set)
	}
}

func equalOptions(a, b node.Options) bool {
	return a.DataDir == b.DataDir && a.DBMaxConns == b.DBMaxConns && a.LogRetention == b.LogRetention &&
		a.JWKSMaxAge == b.JWKSMaxAge && a.WSTokenTTL == b.WSTokenTTL && a.MaxPayload == b.MaxPayload &&
		a.BatchMax == b.BatchMax && a.BatchDelay == b.BatchDelay && a.CommitsInFlight == b.CommitsInFlight &&
		a.UserRate == b.UserRate && a.UserBurst == b.UserBurst && a.ServiceRate == b.ServiceRate &&
		a.ServiceBurst == b.ServiceBurst && a.UserReadRate == b.UserReadRate && a.UserReadBurst == b.UserReadBurst &&
		a.BodyBytesInFlight == b.BodyBytesInFlight && a.WSMaxPerUser == b.WSMaxPerUser && a.WSQueue == b.WSQueue &&
		a.WSWriteTimeout == b.WSWriteTimeout && a.WSPingInterval == b.WSPingInterval && a.WSReadLimit == b.WSReadLimit &&
		a.WSFrameRate == b.WSFrameRate && a.WSFrameBurst == b.WSFrameBurst && a.HTTPReadTimeout == b.HTTPReadTimeout &&
		a.HTTPIdleTimeout == b.HTTPIdleTimeout && a.HTTPMaxHeaderBytes == b.HTTPMaxHeaderBytes && a.MaxConns == b.MaxConns &&
		a.SMTP.StartTLS == b.SMTP.StartTLS && a.SMTP.Timeout == b.SMTP.Timeout &&
		a.DeliveryMaxAttempts == b.DeliveryMaxAttempts && a.DeliveryBackoff == b.DeliveryBackoff &&
		a.DeliveryBackoffMax == b.DeliveryBackoffMax && a.DeliveryTimeout == b.DeliveryTimeout &&
		a.DeliveryConcurrency == b.DeliveryConcurrency && a.DeliveryPoll == b.DeliveryPoll
}

// TestZeroRateIsTheDefault, through the real HTTP server: a node opened with zero
// options limits each user's reads to the documented 20/s with bursts of 100, and a
// rate of math.Inf(1) lifts the limit.
func TestZeroRateIsTheDefault(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	reads := func(rate float64, n int) (ok int, limited bool) {
		ctx := context.Background()
		nd, err := node.Open(ctx, node.Options{DataDir: t.TempDir(), JWTSecret: []byte(httpSecret), UserReadRate: rate, Log: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(nd.Handler())
		defer func() {
			srv.Close()
			_ = nd.Close(ctx)
		}()
		tok, _ := auth.SignUserToken([]byte(httpSecret), "ada", "", time.Hour)
		for range n {
			req, _ := http.NewRequest("GET", srv.URL+"/notifications/unread/count", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				if resp.Header.Get("Retry-After") == "" {
					t.Fatal("429 without Retry-After")
				}
				return ok, true
			default:
				t.Fatalf("read: %d", resp.StatusCode)
			}
		}
		return ok, false
	}
	start := time.Now()
	ok, limited := reads(0, 1000)
	if most := 100 + 20*time.Since(start).Seconds() + 1; !limited || float64(ok) > most || ok < 100 {
		t.Fatalf("zero UserReadRate: %d reads answered before a 429 (limited: %v); want the burst of 100 and about 20/s more, at most %.0f", ok, limited, most)
	}
	if ok, limited := reads(math.Inf(1), 300); limited || ok != 300 {
		t.Fatalf("UserReadRate +Inf: %d of 300 reads answered, limited: %v", ok, limited)
	}
}
