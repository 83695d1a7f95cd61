package dispatch_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/persist"
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

type failure struct{ perm bool }

func (f failure) Error() string             { return "refused" }
func (f failure) IsPermanent() bool         { return f.perm }
func (f failure) RetryDelay() time.Duration { return 0 }

func (c *flaky) Send(_ context.Context, d persistence.Delivery) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.attempts[d.ID]++
	if c.attempts[d.ID] <= c.fails {
		return failure{perm: c.perm}
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
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	store, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	engine, _ := actor.NewEngine(actor.NewEngineConfig())
	writer := spawnWriter(t, engine, store)
	pid := engine.Spawn(dispatch.New(dispatch.Options{
		Claimer: store, Writer: writer, Outbox: store, Senders: map[herald.Channel]dispatch.Sender{herald.ChannelWebhook: sender},
		Poll: 10 * time.Millisecond, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond, MaxAttempts: maxAttempts,
	}), "dispatch")
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

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRetriesUntilAccepted(t *testing.T) {
	c := &flaky{fails: 3, attempts: map[string]int{}, accepted: map[string]bool{}}
	store, wake := setup(t, c, 10)
	createWithWebhook(t, store, 30)
	wake()
	waitFor(t, "every delivery accepted", func() bool { n, _ := c.counts(); return n == 30 })
	_, attempts := c.counts()
	for id, n := range attempts {
		if n != 4 {
			t.Fatalf("delivery %s: %d attempts, want 4", id, n)
		}
	}
	waitFor(t, "outcomes recorded", func() bool {
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
			waitFor(t, "dead letters", func() bool {
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

func TestUnconfiguredChannel(t *testing.T) {
	store, wake := setup(t, nil, 5)
	items := []herald.NewNotification{{ReceiverID: "u", Type: "t", Channels: []herald.Channel{herald.ChannelEmail}}}
	_ = items[0].Validate(herald.Caller{Service: true}, herald.ValidateOptions{})
	if _, err := store.Apply(context.Background(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: items}}); err != nil {
		t.Fatal(err)
	}
	wake()
	waitFor(t, "a dead letter naming the channel", func() bool {
		ds, err := store.Deliveries(context.Background(), persistence.DeliveryDead, "", 10)
		return err == nil && len(ds) == 1 && ds[0].LastError == "the email channel is not configured"
	})
}
