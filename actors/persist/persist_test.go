package persist_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
	"github.com/heraldhq/herald/persistence/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openEmbedded(tb testing.TB) persistence.Store {
	s, err := embedded.Open(tb.TempDir(), embedded.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func openPostgres(tb testing.TB, srv *pgtest.Server) persistence.Store {
	url := srv.NewDatabase(tb)
	s, err := postgres.OpenAndMigrate(context.Background(), url, postgres.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func spawn(tb testing.TB, store persistence.Store, o persist.Options) persist.Client {
	engine, err := actor.NewEngine(actor.NewEngineConfig())
	if err != nil {
		tb.Fatal(err)
	}
	pid := engine.Spawn(persist.New(store, o), "persist")
	c := persist.Client{Engine: engine, PID: pid}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Drain(ctx)
		<-engine.Poison(pid).Done()
	})
	return c
}

func createOp(receiver string) persistence.Op {
	n := herald.NewNotification{ReceiverID: receiver, Type: "t"}
	if err := n.Validate(herald.Caller{Service: true}, herald.ValidateOptions{}); err != nil {
		panic(err)
	}
	return persistence.Op{Kind: persistence.OpCreate, Creates: []herald.NewNotification{n}}
}

// TestGroupCommit: concurrent writers are grouped into fewer transactions than writes,
// every caller is answered with its own durable result, entries reach OnCommit in seq
// order — with one commit in flight, and with several on PostgreSQL — and the metrics
// count what was stored.
func TestGroupCommit(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testGroupCommit(t, openEmbedded(t), 1) })
	t.Run("embedded/in-flight-2", func(t *testing.T) { testGroupCommit(t, openEmbedded(t), 2) })
	t.Run("postgres/in-flight-3", func(t *testing.T) { testGroupCommit(t, openPostgres(t, pgtest.Shared(t)), 3) })
}

func testGroupCommit(t *testing.T, store persistence.Store, inFlight int) {
	reg := prometheus.NewRegistry()
	var mu sync.Mutex // guards delivered and written: OnCommit runs on the commit goroutines
	delivered := map[string][]herald.Entry{}
	written := map[string]string{} // notification id → receiver, as the callers were answered
	c := spawn(t, store, persist.Options{InFlight: inFlight, Metrics: persist.NewMetrics(reg), OnCommit: func(es []herald.Entry) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range es {
			delivered[e.UserID] = append(delivered[e.UserID], e)
		}
	}})

	const writers, each, users = 64, 20, 8
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				res, err := c.Write(context.Background(), createOp(fmt.Sprint("u", (w+i)%users)))
				if err != nil || len(res.Notifications) != 1 || res.Notifications[0].Seq == 0 {
					failed.Add(1)
					continue
				}
				mu.Lock()
				written[res.Notifications[0].ID] = res.Notifications[0].ReceiverID
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d writes failed", failed.Load())
	}
	var total int64
	for u := 0; u < users; u++ {
		n, err := store.UnreadCount(context.Background(), fmt.Sprint("u", u))
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != writers*each {
		t.Fatalf("stored %d, want %d", total, writers*each)
	}
	// OnCommit runs before the callers are answered, so every write is in delivered by
	// now: each exactly once, as a created entry of its receiver, in seq order per user.
	mu.Lock()
	if len(written) != writers*each {
		t.Fatalf("%d distinct notifications answered, want %d", len(written), writers*each)
	}
	seen := 0
	for u, es := range delivered {
		seqs := make([]int64, len(es))
		for i, e := range es {
			seqs[i] = e.Seq
			if e.Event != herald.EventCreated || e.Notification == nil {
				t.Fatalf("user %s: entry %d is %q with notification %v, want %q", u, e.Seq, e.Event, e.Notification, herald.EventCreated)
			}
			if got, ok := written[e.Notification.ID]; !ok || got != u || e.Notification.ReceiverID != u {
				t.Fatalf("user %s: entry %d carries notification %s (receiver %q), answered for receiver %q", u, e.Seq, e.Notification.ID, e.Notification.ReceiverID, got)
			}
			delete(written, e.Notification.ID)
			seen++
		}
		if inFlight > 1 {
			slices.Sort(seqs) // concurrent commits may hand a user's batches over in either order
		}
		for i, s := range seqs {
			if s != int64(i+1) {
				t.Fatalf("user %s delivered out of order or with a gap: %v", u, seqs)
			}
		}
	}
	if len(delivered) != users || seen != writers*each || len(written) != 0 {
		t.Fatalf("OnCommit received %d entries for %d users, want %d for %d; %d answered writes never reached it", seen, len(delivered), writers*each, users, len(written))
	}
	mu.Unlock()
	if got := counterValue(t, reg, "herald_notifications_stored_total"); got != writers*each {
		t.Fatalf("stored metric %v", got)
	}
	batches := histogramCount(t, reg, "herald_store_batch_size")
	if batches >= writers*each {
		t.Fatalf("%d transactions for %d concurrent writes: no grouping", batches, writers*each)
	}
	// Every write's wait for its transaction is timed, once.
	if waits := histogramCount(t, reg, "herald_store_commit_wait_seconds"); waits != writers*each {
		t.Fatalf("%d commit waits observed for %d writes", waits, writers*each)
	}
	t.Logf("%d writes in %d transactions", writers*each, batches)
}

// TestFailedCommitFailsTheBatch: when the transaction fails, every caller in the batch
// gets unavailable, and nothing of the batch is visible afterwards.
func TestFailedCommitFailsTheBatch(t *testing.T) {
	store := openEmbedded(t)
	c := spawn(t, store, persist.Options{})
	if _, err := c.Write(context.Background(), createOp("before")); err != nil {
		t.Fatal(err)
	}
	store.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Write(context.Background(), createOp("after"))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if herald.ErrorCode(err) != herald.CodeUnavailable {
			t.Fatalf("write on a failed store: %v, want unavailable", err)
		}
	}
}

// TestCallerGaveUp: a write whose context ended before its batch left is not written.
func TestCallerGaveUp(t *testing.T) {
	store := openEmbedded(t)
	c := spawn(t, store, persist.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Write(ctx, createOp("quitter")); herald.ErrorCode(err) != herald.CodeUnavailable {
		t.Fatalf("cancelled write: %v", err)
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n, _ := store.UnreadCount(context.Background(), "quitter"); n != 0 {
		t.Fatalf("a write whose caller gave up was stored (%d)", n)
	}
}

// family returns the metric family name of reg, failing the test when there is none.
func family(t *testing.T, reg *prometheus.Registry, name string) *dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	return family(t, reg, name).GetMetric()[0].GetCounter().GetValue()
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	return family(t, reg, name).GetMetric()[0].GetHistogram().GetSampleCount()
}

// BenchmarkPersist measures stored notifications/s through the persistence actor:
// many concurrent callers each creating one notification and waiting for its commit,
// over 1, 100 and 10,000 distinct receivers.
func BenchmarkPersist(b *testing.B) {
	// PostgreSQL with fsync on, so the figures are those of a durable setup.
	pg := pgtest.OwnWith(b, pgtest.Options{Fsync: true})
	kinds := []struct {
		name string
		open func(b *testing.B) persistence.Store
	}{
		{"postgres", func(b *testing.B) persistence.Store { return openPostgres(b, pg) }},
		{"embedded", func(b *testing.B) persistence.Store { return openEmbedded(b) }},
	}
	for _, k := range kinds {
		for _, receivers := range []int{1, 100, 10000} {
			b.Run(fmt.Sprintf("%s/receivers=%d", k.name, receivers), func(b *testing.B) {
				c := spawn(b, k.open(b), persist.Options{})
				const perOp = 2000 // notifications per benchmark iteration
				const callers = 512
				ops := make([]persistence.Op, receivers)
				for i := range ops {
					ops[i] = createOp(fmt.Sprint("bench-user-", i))
				}
				b.ResetTimer()
				start := time.Now()
				for it := 0; it < b.N; it++ {
					var next atomic.Int64
					var wg sync.WaitGroup
					for w := 0; w < callers; w++ {
						wg.Add(1)
						go func() {
							defer wg.Done()
							for {
								i := next.Add(1) - 1
								if i >= perOp {
									return
								}
								if _, err := c.Write(context.Background(), ops[int(i)%receivers]); err != nil {
									b.Error(err)
									return
								}
							}
						}()
					}
					wg.Wait()
				}
				b.ReportMetric(float64(b.N*perOp)/time.Since(start).Seconds(), "notifications/s")
			})
		}
	}
}

// sizeRecorder is a store that records the notifications of its largest transaction.
type sizeRecorder struct {
	persistence.Store
	mu      sync.Mutex // guards largest: Apply runs on the commit goroutine
	largest int
}

func (r *sizeRecorder) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	n := 0
	for _, op := range ops {
		n += max(1, len(op.Creates))
	}
	r.mu.Lock()
	r.largest = max(r.largest, n)
	r.mu.Unlock()
	return r.Store.Apply(ctx, now, ops)
}

// TestBatchLimits: no transaction holds more than MaxBatch notifications, a batch create
// larger than the rest of a batch waits for the next one, and with a FlushDelay lone
// writes still complete.
func TestBatchLimits(t *testing.T) {
	store := &sizeRecorder{Store: openEmbedded(t)}
	reg := prometheus.NewRegistry()
	c := spawn(t, store, persist.Options{MaxBatch: 10, FlushDelay: 2 * time.Millisecond, Metrics: persist.NewMetrics(reg)})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			op := createOp(fmt.Sprint("lim", i%5))
			if i%10 == 0 { // a batch create of 7 among single creates
				for j := 0; j < 6; j++ {
					op.Creates = append(op.Creates, createOp(fmt.Sprint("lim", j)).Creates[0])
				}
			}
			_, err := c.Write(context.Background(), op)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	store.mu.Lock()
	largest := store.largest
	store.mu.Unlock()
	if largest > 10 {
		t.Fatalf("a transaction held %d notifications, more than MaxBatch 10", largest)
	}
	if got := counterValue(t, reg, "herald_notifications_stored_total"); got != 90+10*7 {
		t.Fatalf("stored %v, want 160", got)
	}
}

// gateStore is a store whose transactions wait for release: the test sees each one's
// size as it starts.
type gateStore struct {
	persistence.Store
	entered chan int
	release chan struct{}
}

func (g *gateStore) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	n := 0
	for _, op := range ops {
		n += max(1, len(op.Creates))
	}
	g.entered <- n
	<-g.release
	return g.Store.Apply(ctx, now, ops)
}

// TestSecondCommitStartsAtOnce: with two commits allowed in flight, a write that
// arrives while one commit runs starts the second at once, without waiting for company;
// writes that arrive while both run wait, and leave together in the next batch.
func TestSecondCommitStartsAtOnce(t *testing.T) {
	g := &gateStore{Store: openEmbedded(t), entered: make(chan int, 4), release: make(chan struct{})}
	c := spawn(t, g, persist.Options{InFlight: 2, MaxBatch: 10})
	var once sync.Once
	open := func() { once.Do(func() { close(g.release) }) }
	t.Cleanup(open) // before the actor stops, even when the test fails
	replies := make(chan persist.Reply, 12)
	// Sent from this goroutine, in order: each is in the actor's mailbox when Send returns.
	send := func(user string) {
		c.Engine.Send(c.PID, persist.Write{Op: createOp(user), Reply: replies})
	}
	entered := func(what string) int {
		select {
		case n := <-g.entered:
			return n
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never started", what)
			return 0
		}
	}
	send("first")
	if n := entered("the first commit"); n != 1 {
		t.Fatalf("the first commit holds %d notifications, want 1", n)
	}
	send("second")
	if n := entered("the second commit, with the first still running,"); n != 1 {
		t.Fatalf("the second commit holds %d notifications, want 1", n)
	}
	for i := range 10 {
		send(fmt.Sprint("next", i))
	}
	open()
	if n := entered("the third commit"); n != 10 {
		t.Fatalf("the third commit holds %d notifications, want the 10 that waited", n)
	}
	for range 12 {
		if r := <-replies; r.Err != nil || r.Result.Err != nil {
			t.Fatal(r.Err, r.Result.Err)
		}
	}
}
