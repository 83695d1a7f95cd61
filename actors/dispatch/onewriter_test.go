package dispatch_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"go.uber.org/goleak"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
)

// recorder is a store that records the op kinds of each transaction, and holds the next
// one open, once armed, until release is closed.
type recorder struct {
	persistence.Store
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	batches [][]persistence.OpKind
}

func (r *recorder) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	kinds := make([]persistence.OpKind, len(ops))
	for i := range ops {
		kinds[i] = ops[i].Kind
	}
	r.mu.Lock()
	r.batches = append(r.batches, kinds)
	r.mu.Unlock()
	if r.armed.CompareAndSwap(true, false) {
		r.entered <- struct{}{}
		<-r.release
	}
	return r.Store.Apply(ctx, now, ops)
}

// announcing writes through the persistence actor as persist.Client does, and reports
// each op once it is in the actor's mailbox: what it sends after that lands behind it.
type announcing struct {
	c    persist.Client
	sent chan persistence.OpKind
}

func (a announcing) Write(ctx context.Context, op persistence.Op) (persistence.Result, error) {
	reply := make(chan persist.Reply, 1)
	a.c.Engine.Send(a.c.PID, persist.Write{Ctx: ctx, Op: op, Reply: reply})
	a.sent <- op.Kind
	select {
	case r := <-reply:
		if r.Err != nil {
			return persistence.Result{}, r.Err
		}
		return r.Result, r.Result.Err
	case <-ctx.Done():
		return persistence.Result{}, ctx.Err()
	}
}

// held is a channel whose sends wait until released.
type held struct {
	started chan string
	release chan struct{}
}

func (h held) Send(ctx context.Context, d persistence.Delivery) error {
	h.started <- d.ID
	<-h.release
	return nil
}

// recv receives from c, failing the test when nothing comes within 10 s.
func recv[T any](t *testing.T, c <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10 s", what)
		panic("unreachable")
	}
}

func webhookOp(t *testing.T, receiver string) persistence.Op {
	n := herald.NewNotification{ReceiverID: receiver, Type: "t", Channels: []herald.Channel{herald.ChannelRealtime, herald.ChannelWebhook}}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		t.Fatal(err)
	}
	return persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}}
}

// TestOutcomesJoinTheGroupCommit: the dispatcher records an attempt's outcome as an op
// of the persistence actor, which commits it in one transaction with the creates that
// arrived meanwhile, not in a transaction of its own.
func TestOutcomesJoinTheGroupCommit(t *testing.T) {
	before := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, before) })
	base, err := embedded.Open(t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{Store: base, entered: make(chan struct{}), release: make(chan struct{})}
	engine, _ := actor.NewEngine(actor.NewEngineConfig())
	client := spawnWriter(t, engine, rec)
	w := announcing{c: client, sent: make(chan persistence.OpKind, 4)}
	sender := held{started: make(chan string, 1), release: make(chan struct{})}
	pid := engine.Spawn(dispatch.New(dispatch.Options{
		Claimer: base, Writer: w, Senders: map[herald.Channel]dispatch.Sender{herald.ChannelWebhook: sender},
		Poll: time.Hour,
	}), "dispatch")
	var once, sent sync.Once
	open := func() { once.Do(func() { close(rec.release) }) }
	finish := func() { sent.Do(func() { close(sender.release) }) }
	t.Cleanup(func() {
		open()
		finish()
		done := make(chan struct{})
		engine.Send(pid, dispatch.Drain{Done: done})
		<-done
		<-engine.Poison(pid).Done()
		stopWriter(t, engine, client)
		base.Close()
	})
	ctx := context.Background()

	if _, err := client.Write(ctx, webhookOp(t, "ada")); err != nil {
		t.Fatal(err)
	}
	engine.Send(pid, dispatch.Wake{})
	id := recv(t, sender.started, "attempt")
	// A commit in flight: what arrives meanwhile waits for it, and leaves together.
	rec.armed.Store(true)
	errs := make(chan error, 2)
	go func() { _, err := client.Write(ctx, webhookOp(t, "bo")); errs <- err }()
	recv(t, rec.entered, "commit")
	finish() // the attempt succeeds: its outcome goes to the writer
	if k := recv(t, w.sent, "write from the dispatcher"); k != persistence.OpFinishDeliveries {
		t.Fatalf("the dispatcher wrote op %d, want OpFinishDeliveries", k)
	}
	go func() { _, err := w.Write(ctx, webhookOp(t, "cy")); errs <- err }()
	if k := recv(t, w.sent, "create"); k != persistence.OpCreate {
		t.Fatalf("sent op %d, want OpCreate", k)
	}
	open()
	for range 2 {
		if err := recv(t, errs, "commit"); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "the outcome recorded", 10*time.Second, func() bool {
		ds, err := base.Deliveries(ctx, persistence.DeliverySent, "", 10)
		return err == nil && len(ds) == 1 && ds[0].ID == id
	})
	rec.mu.Lock()
	batches := slices.Clone(rec.batches)
	rec.mu.Unlock()
	shared := false
	for _, b := range batches {
		if slices.Contains(b, persistence.OpFinishDeliveries) && slices.Contains(b, persistence.OpCreate) {
			shared = true
		}
	}
	if !shared {
		t.Fatalf("transactions %v: the outcome did not share one with a create", batches)
	}
}
