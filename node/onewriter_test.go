package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api/auth"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/node"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
	"github.com/heraldhq/herald/persistence/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	oneWriterSecret = "node-test-secret-0123456789abcdef"
	oneWriterKey    = "svc-key"
)

// storeOps is what the persistence actor has committed so far: the operations
// (herald_store_batch_size's sum) and the transactions (its count).
func storeOps(t *testing.T, reg *prometheus.Registry) (ops float64, commits uint64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "herald_store_batch_size" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleSum(), h.GetSampleCount()
		}
	}
	return 0, 0
}

// waitOps waits until the persistence actor has committed want operations in all, and
// fails when it commits more, or when they do not come within 10 s.
func waitOps(t *testing.T, reg *prometheus.Registry, want float64, what string) {
	t.Helper()
	poll.Until(t, what+": the write through the persistence actor", 10*time.Second, func() bool {
		got, _ := storeOps(t, reg)
		if got > want {
			t.Fatalf("%s: the persistence actor committed %v operations, want %v", what, got, want)
		}
		return got == want
	})
}

// nodeStores opens each store kind as a node option; seed, when not nil, writes to the
// store first through its Apply, as an earlier run of the node would have.
var nodeStores = []struct {
	name string
	open func(t *testing.T, seed func(persistence.Store)) node.Options
}{
	{"embedded", func(t *testing.T, seed func(persistence.Store)) node.Options {
		dir := t.TempDir()
		if seed != nil {
			s, err := embedded.Open(dir, embedded.Options{})
			if err != nil {
				t.Fatal(err)
			}
			seed(s)
			s.Close()
		}
		return node.Options{DataDir: dir}
	}},
	{"postgres", func(t *testing.T, seed func(persistence.Store)) node.Options {
		url := pgtest.Shared(t).NewDatabase(t)
		if seed != nil {
			s, err := postgres.OpenAndMigrate(context.Background(), url, postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			seed(s)
			s.Close()
		}
		return node.Options{DatabaseURL: url}
	}},
}

// webhookSink answers the node's webhooks with the statuses it is given, one per
// request, and reports each request.
type webhookSink struct {
	*httptest.Server
	status chan int
	got    chan string // the webhook-id of each request
}

func newWebhookSink() *webhookSink {
	s := &webhookSink{status: make(chan int, 8), got: make(chan string, 8)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		code := <-s.status
		w.WriteHeader(code)
		s.got <- r.Header.Get("webhook-id")
	}))
	return s
}

func (s *webhookSink) next(t *testing.T) string {
	t.Helper()
	select {
	case id := <-s.got:
		return id
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook within 10 s")
		return ""
	}
}

func call(t *testing.T, base, method, path, cred, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true // no idle connection left behind
	req.Header.Set("Authorization", "Bearer "+cred)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestEveryWriteGoesThroughThePersistenceActor: contacts, preferences, dead-letter
// retries and the dispatcher's delivery outcomes are operations the persistence actor
// commits (each counted in herald_store_batch_size), not writes of their own beside it;
// an unknown delivery id is still not_found. Every step waits for the exact count of
// operations the actor committed, so a write that went straight to the store fails it.
func TestEveryWriteGoesThroughThePersistenceActor(t *testing.T) {
	for _, st := range nodeStores {
		t.Run(st.name, func(t *testing.T) {
			o := st.open(t, nil)
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			sink := newWebhookSink()
			defer sink.Close()
			reg := prometheus.NewRegistry()
			o.JWTSecret, o.APIKeys, o.Registry, o.Log = []byte(oneWriterSecret), []string{oneWriterKey}, reg, quiet()
			o.WebhookURLs, o.WebhookSecret = []string{sink.URL}, "whsec-test-0123456789abcdef0123456789"
			o.DeliveryPoll = 10 * time.Millisecond
			ctx := context.Background()
			n, err := node.Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(n.Handler())
			defer func() {
				srv.Close()
				if err := n.Close(ctx); err != nil {
					t.Error(err)
				}
			}()
			// The log is pruned once at start: one operation.
			waitOps(t, reg, 1, "prune at start")

			if code, body := call(t, srv.URL, "PUT", "/contacts/ada", oneWriterKey, `{"email":"ada@example.com"}`); code != 200 {
				t.Fatalf("put contact: %d %s", code, body)
			}
			waitOps(t, reg, 2, "PUT /contacts")
			ada, err := signUser("ada")
			if err != nil {
				t.Fatal(err)
			}
			if code, body := call(t, srv.URL, "PUT", "/preferences", ada, `{"channels":{"email":false}}`); code != 200 {
				t.Fatalf("put preferences: %d %s", code, body)
			}
			waitOps(t, reg, 3, "PUT /preferences")

			// A webhook the endpoint refuses for good becomes a dead letter.
			sink.status <- http.StatusBadRequest
			code, body := call(t, srv.URL, "POST", "/notifications", oneWriterKey, `{"receiverId":"ada","type":"t","channels":["realtime","webhook"]}`)
			if code != 201 {
				t.Fatalf("create: %d %s", code, body)
			}
			id := sink.next(t)
			waitOps(t, reg, 5, "the create and its failed attempt's outcome")
			if code, body := call(t, srv.URL, "POST", "/deliveries/"+id+"/retry", oneWriterKey, ""); code != 200 || !strings.Contains(string(body), `"state":"pending"`) {
				t.Fatalf("retry: %d %s", code, body)
			}
			waitOps(t, reg, 6, "POST /deliveries/{id}/retry")
			sink.status <- http.StatusOK
			if again := sink.next(t); again != id {
				t.Fatalf("retried webhook-id %q, want %q", again, id)
			}
			waitOps(t, reg, 7, "the retried attempt's outcome")
			code, body = call(t, srv.URL, "GET", "/deliveries?state=sent", oneWriterKey, "")
			var sent struct {
				Data []struct{ ID string }
			}
			if err := json.Unmarshal(body, &sent); code != 200 || err != nil || len(sent.Data) != 1 || sent.Data[0].ID != id {
				t.Fatalf("sent deliveries: %d %s", code, body)
			}
			// An unknown delivery keeps its contract code, and commits nothing.
			if code, body := call(t, srv.URL, "POST", "/deliveries/0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b/retry", oneWriterKey, ""); code != 404 || !strings.Contains(string(body), string(herald.CodeNotFound)) {
				t.Fatalf("retry of an unknown delivery: %d %s", code, body)
			}
		})
	}
}

// TestPruneGoesThroughThePersistenceActor: the log entries past the retention go in an
// operation the persistence actor commits, not in a transaction of the prune loop's own.
func TestPruneGoesThroughThePersistenceActor(t *testing.T) {
	for _, st := range nodeStores {
		t.Run(st.name, func(t *testing.T) {
			long := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Microsecond)
			var reopen func() persistence.Store
			o := st.open(t, func(s persistence.Store) {
				nn := herald.NewNotification{ReceiverID: "ada", Type: "t"}
				if err := nn.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
					t.Fatal(err)
				}
				res, err := s.Apply(context.Background(), long, []persistence.Op{{Kind: persistence.OpCreate, Creates: []herald.NewNotification{nn}}})
				if err != nil || res[0].Err != nil {
					t.Fatalf("seed: %v %v", err, res)
				}
				res, err = s.Apply(context.Background(), long, []persistence.Op{{Kind: persistence.OpMarkRead, UserID: "ada", ID: res[0].Notifications[0].ID}})
				if err != nil || res[0].Err != nil {
					t.Fatalf("seed: %v %v", err, res)
				}
			})
			// Read back with a retention that still covers the entry: only a prune makes
			// its cursor start over.
			if o.DataDir != "" {
				reopen = func() persistence.Store {
					s, err := embedded.Open(o.DataDir, embedded.Options{Retention: 1000 * time.Hour})
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
			} else {
				reopen = func() persistence.Store {
					s, err := postgres.Open(context.Background(), o.DatabaseURL, postgres.Options{Retention: 1000 * time.Hour})
					if err != nil {
						t.Fatal(err)
					}
					return s
				}
			}
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			reg := prometheus.NewRegistry()
			o.JWTSecret, o.Registry, o.Log, o.LogRetention = []byte(oneWriterSecret), reg, quiet(), 24*time.Hour
			ctx := context.Background()
			n, err := node.Open(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					n.Close(ctx)
				}
			}()
			waitOps(t, reg, 1, "prune at start")
			closed = true
			if err := n.Close(ctx); err != nil {
				t.Fatal(err)
			}
			s := reopen()
			defer s.Close()
			p, err := s.Events(ctx, "ada", 1, 10)
			if err != nil || !p.Reset || p.Seq != 2 {
				t.Fatalf("events after the prune: %+v %v; want a reset at seq 2 (the read entry pruned)", p, err)
			}
		})
	}
}

func signUser(user string) (string, error) {
	return auth.SignUserToken([]byte(oneWriterSecret), user, "", time.Hour)
}
