package dispatch_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/dispatch/deliver"
	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
)

// flaky is a channel that fails each delivery fails times, then accepts it.
type flaky struct {
	mu       sync.Mutex
	fails    int
	perm     bool
	attempts map[string]int
	accepted map[string]bool
}

func (c *flaky) Send(_ context.Context, d persistence.Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts[d.ID]++
	if c.attempts[d.ID] <= c.fails {
		return &deliver.Error{Permanent: c.perm, Err: errors.New("refused")}
	}
	c.accepted[d.ID] = true
	return nil
}

func (c *flaky) counts() (accepted int, attempts map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.attempts {
		m[k] = v
	}
	return len(c.accepted), m
}

func setup(t *testing.T, sender dispatch.Sender, maxAttempts int) (persistence.Store, func()) {
	return setupWith(t, sender, dispatch.Options{BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxAttempts: maxAttempts})
}

// setupWith runs a dispatcher with o (Outbox, Senders and Poll filled in) on an
// embedded store.
func setupWith(t *testing.T, sender dispatch.Sender, o dispatch.Options) (persistence.Store, func()) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o.Outbox, o.Poll = store, 10*time.Millisecond
	o.Senders = map[herald.Channel]dispatch.Sender{herald.ChannelWebhook: sender}
	engine, _ := actor.NewEngine(actor.NewEngineConfig())
	writer := spawnWriter(t, engine, store)
	o.Claimer, o.Writer = store, writer
	pid := engine.Spawn(dispatch.New(o), "dispatch")
	t.Cleanup(func() {
		done := make(chan struct{})
		engine.Send(pid, dispatch.Drain{Done: done})
		<-done
		<-engine.Poison(pid).Done()
		stopWriter(t, engine, writer)
		store.Close()
	})
	return store, func() { engine.Send(pid, dispatch.Wake{}) }
}

// spawnWriter starts the persistence actor on store: the dispatcher records outcomes
// through it.
func spawnWriter(t testing.TB, engine *actor.Engine, store persistence.Applier) persist.Client {
	return persist.Client{Engine: engine, PID: engine.Spawn(persist.New(store, persist.Options{}), "persist")}
}

func stopWriter(t testing.TB, engine *actor.Engine, w persist.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Drain(ctx); err != nil {
		t.Error(err)
	}
	<-engine.Poison(w.PID).Done()
}

func createWithWebhook(t *testing.T, s persistence.Store, n int) {
	items := make([]herald.NewNotification, n)
	for i := range items {
		items[i] = herald.NewNotification{ReceiverID: "u", Type: "t", Channels: []herald.Channel{herald.ChannelRealtime, herald.ChannelWebhook}}
		if err := items[i].Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Apply(context.Background(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: items}}); err != nil {
		t.Fatal(err)
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	c := &flaky{fails: 3, attempts: map[string]int{}, accepted: map[string]bool{}}
	store, wake := setup(t, c, 10)
	createWithWebhook(t, store, 30)
	wake()
	poll.Until(t, "every delivery accepted", 20*time.Second, func() bool { n, _ := c.counts(); return n == 30 })
	_, attempts := c.counts()
	for id, n := range attempts {
		if n != 4 {
			t.Fatalf("delivery %s: %d attempts, want 4", id, n)
		}
	}
	poll.Until(t, "outcomes recorded", 20*time.Second, func() bool {
		ds, err := store.Deliveries(context.Background(), persistence.DeliverySent, "", 100)
		return err == nil && len(ds) == 30 && ds[0].Attempts == 4
	})
}

func TestDeadLetters(t *testing.T) {
	for _, tc := range []struct {
		name      string
		perm      bool
		attempts  int
		wantTries int
	}{{"permanent", true, 10, 1}, {"max attempts", false, 3, 3}} {
		t.Run(tc.name, func(t *testing.T) {
			c := &flaky{fails: 100, perm: tc.perm, attempts: map[string]int{}, accepted: map[string]bool{}}
			store, wake := setup(t, c, tc.attempts)
			createWithWebhook(t, store, 5)
			wake()
			var dead []persistence.Delivery
			poll.Until(t, "dead letters", 20*time.Second, func() bool {
				var err error
				dead, err = store.Deliveries(context.Background(), persistence.DeliveryDead, "", 100)
				return err == nil && len(dead) == 5
			})
			for _, d := range dead {
				if d.Attempts != tc.wantTries || d.LastError != "refused" {
					t.Fatalf("dead letter %+v, want %d attempts", d, tc.wantTries)
				}
			}
			if _, attempts := c.counts(); len(attempts) != 5 {
				t.Fatalf("attempted %d deliveries", len(attempts))
			}
		})
	}
}

// TestSenderErrorsClassified: the errors of the real webhook sender, wrapped or not,
// steer the dispatcher through the one delivery error type: a 404 is a dead letter
// after one attempt, a 503 with Retry-After is retried no sooner than the endpoint
// asked (the backoff alone would retry within milliseconds), and an error that is no
// *deliver.Error is retried until MaxAttempts.
func TestSenderErrorsClassified(t *testing.T) {
	const maxAttempts = 3
	for _, tc := range []struct {
		name     string
		status   int
		wrap     bool
		plain    bool // the sender returns an error that is no *deliver.Error
		state    persistence.DeliveryState
		attempts int
		minWait  time.Duration // pending: how long after the attempt it is due again
		errText  string        // how the delivery's last error starts
	}{
		{name: "404", status: http.StatusNotFound, state: persistence.DeliveryDead, attempts: 1, errText: "webhook: permanent failure: POST "},
		{name: "404 wrapped", status: http.StatusNotFound, wrap: true, state: persistence.DeliveryDead, attempts: 1, errText: "attempt: webhook: permanent failure: POST "},
		{name: "503 Retry-After", status: http.StatusServiceUnavailable, state: persistence.DeliveryPending, attempts: 1, minWait: 100 * time.Second, errText: "webhook: retryable failure: POST "},
		{name: "plain error", plain: true, state: persistence.DeliveryDead, attempts: maxAttempts, errText: "no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Retry-After", "120")
				w.WriteHeader(tc.status)
			}))
			tr := &http.Transport{}
			ws, err := webhook.New(webhook.Options{Secret: []byte("a test secret of at least 32 bytes!"), Client: &http.Client{Transport: tr}})
			if err != nil {
				t.Fatal(err)
			}
			var sender dispatch.Sender = dispatch.Webhook{Sender: ws, URLs: []string{srv.URL}}
			switch {
			case tc.wrap:
				sender = wrapped{sender}
			case tc.plain:
				sender = plain{}
			}
			store, wake := setupWith(t, sender, dispatch.Options{BackoffBase: time.Millisecond, BackoffMax: time.Hour, MaxAttempts: maxAttempts})
			t.Cleanup(func() { // before the leak check of setupWith
				srv.Close()
				tr.CloseIdleConnections()
			})
			createWithWebhook(t, store, 1)
			start := time.Now()
			wake()
			var ds []persistence.Delivery
			poll.Until(t, fmt.Sprintf("a %s delivery after %d attempts", tc.state, tc.attempts), 20*time.Second, func() bool {
				ds, err = store.Deliveries(context.Background(), tc.state, "", 10)
				return err == nil && len(ds) == 1 && ds[0].Attempts == tc.attempts
			})
			d := ds[0]
			if !strings.HasPrefix(d.LastError, tc.errText) {
				t.Fatalf("last error %q, want it to start with %q", d.LastError, tc.errText)
			}
			if tc.minWait > 0 && d.DueAt.Before(start.Add(tc.minWait)) {
				t.Fatalf("due again at %v, %v after the attempt; want at least %v", d.DueAt, d.DueAt.Sub(start), tc.minWait)
			}
		})
	}
}

type wrapped struct{ s dispatch.Sender }

func (w wrapped) Send(ctx context.Context, d persistence.Delivery) error {
	if err := w.s.Send(ctx, d); err != nil {
		return fmt.Errorf("attempt: %w", err)
	}
	return nil
}

type plain struct{}

func (plain) Send(context.Context, persistence.Delivery) error { return errors.New("no route") }

func TestUnconfiguredChannel(t *testing.T) {
	store, wake := setup(t, nil, 5)
	items := []herald.NewNotification{{ReceiverID: "u", Type: "t", Channels: []herald.Channel{herald.ChannelEmail}}}
	_ = items[0].Validate(herald.Caller{Service: true}, herald.ValidateOptions{})
	if _, err := store.Apply(context.Background(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: items}}); err != nil {
		t.Fatal(err)
	}
	wake()
	poll.Until(t, "a dead letter naming the channel", 20*time.Second, func() bool {
		ds, err := store.Deliveries(context.Background(), persistence.DeliveryDead, "", 10)
		return err == nil && len(ds) == 1 && ds[0].LastError == "the email channel is not configured"
	})
}
