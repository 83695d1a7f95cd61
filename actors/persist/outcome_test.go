package persist_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/persist"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/postgres"
)

// keyedOp creates one notification for receiver with the idempotency key key.
func keyedOp(receiver, key string) persistence.Op {
	op := createOp(receiver)
	op.Creates[0].IdempotencyKey = key
	return op
}

// enterStore tells the test when each transaction starts, and does it on the store.
type enterStore struct {
	persistence.Store
	entered chan struct{}
}

func (e *enterStore) Apply(ctx context.Context, now time.Time, ops []persistence.Op) ([]persistence.Result, error) {
	select {
	case e.entered <- struct{}{}:
	default:
	}
	return e.Store.Apply(ctx, now, ops)
}

// pause stops pg and has it resumed at the end of the test if the test did not.
func pause(t *testing.T, pg *pgtest.Server) (resume func()) {
	t.Helper()
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	resume = func() {
		once.Do(func() {
			if err := pg.Resume(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(resume)
	return resume
}

// TestAnswersWhileStorageHangs: with PostgreSQL stopped (SIGSTOP), a caller whose
// deadline passes while its batch is with the store hears outcome_unknown, not
// unavailable: the batch commits when PostgreSQL resumes. Callers whose writes never
// left hear unavailable, and none of those is stored: those whose deadline passed while
// queued, and those whose deadline no longer left room for a commit when their batch
// could leave. The outcome_unknown one, retried with its key, is stored once. The same
// holds with the deadline in the context (Write) and given apart (WriteBy, the API's);
// and the late answer of a write that ended outcome_unknown reaches no other caller.
func TestAnswersWhileStorageHangs(t *testing.T) {
	t.Run("context", func(t *testing.T) { testAnswersWhileStorageHangs(t, false) })
	t.Run("deadline", func(t *testing.T) { testAnswersWhileStorageHangs(t, true) })
}

func testAnswersWhileStorageHangs(t *testing.T, apart bool) {
	pg := pgtest.Own(t)
	store := openPostgres(t, pg)
	entered := make(chan struct{}, 1)
	const commit = 5 * time.Second
	c := spawn(t, &enterStore{Store: store, entered: entered}, persist.Options{CommitTimeout: commit, InFlight: 1})
	if _, err := c.Write(context.Background(), keyedOp("warm", "warm")); err != nil {
		t.Fatal(err)
	}
	<-entered

	resume := pause(t, pg)
	type answer struct {
		user string
		err  error
	}
	answers := make(chan answer, 16)
	write := func(user string, timeout time.Duration) {
		go func() {
			var err error
			if apart {
				_, err = c.WriteBy(context.Background(), keyedOp(user, user), time.Now().Add(timeout))
			} else {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				_, err = c.Write(ctx, keyedOp(user, user))
			}
			answers <- answer{user, err}
		}()
	}
	write("inflight", 500*time.Millisecond)
	<-entered // its batch is with the stopped server
	// Queued behind it: a deadline shorter than a commit, which passes while queued,
	// and deadlines that allowed for a commit on arrival, 300 ms over one, which the
	// queue outlasts (the batch ahead ends only once PostgreSQL resumes, after 500 ms).
	for i := range 4 {
		write(fmt.Sprint("short", i), 500*time.Millisecond)
		write(fmt.Sprint("patient", i), commit+300*time.Millisecond)
	}
	got := map[string]error{}
	for len(got) < 5 { // the in-flight one and the short ones end at their deadline
		a := <-answers
		got[a.user] = a.err
	}
	resume()
	for len(got) < 9 {
		a := <-answers
		got[a.user] = a.err
	}
	if err := c.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The in-flight caller's answer has come by now, into its own waiter.
	for i := range 8 {
		user := fmt.Sprint("after", i)
		res, err := c.WriteBy(context.Background(), keyedOp(user, user), time.Now().Add(commit+time.Second))
		if err != nil || len(res.Notifications) != 1 || res.Notifications[0].ReceiverID != user {
			t.Fatalf("write for %s answered %+v, %v: another write's answer", user, res, err)
		}
	}

	for _, user := range slices.Sorted(maps.Keys(got)) { // inflight first
		err := got[user]
		count, rerr := store.UnreadCount(context.Background(), user)
		if rerr != nil {
			t.Fatal(rerr)
		}
		switch herald.ErrorCode(err) {
		case herald.CodeUnavailable:
			if count != 0 {
				t.Fatalf("%s was answered unavailable (%v) and is stored", user, err)
			}
		case herald.CodeOutcomeUnknown:
			if _, err := c.Write(context.Background(), keyedOp(user, user)); err != nil {
				t.Fatalf("retry of %s: %v", user, err)
			}
			if count, _ := store.UnreadCount(context.Background(), user); count != 1 {
				t.Fatalf("%s retried with its key after outcome_unknown: %d stored, want 1", user, count)
			}
		default:
			t.Fatalf("%s: %v, want unavailable or outcome_unknown", user, err)
		}
		if user == "inflight" && herald.ErrorCode(err) != herald.CodeOutcomeUnknown {
			t.Fatalf("caller whose batch was with the stopped store: %v, want outcome_unknown", err)
		}
		if strings.HasPrefix(user, "short") || strings.HasPrefix(user, "patient") {
			if herald.ErrorCode(err) != herald.CodeUnavailable {
				t.Fatalf("%s never left the queue while PostgreSQL was stopped: %v, want unavailable", user, err)
			}
		}
	}
	if msg := herald.AsError(got["inflight"]).Message; msg != herald.OutcomeUnknownMessage {
		t.Fatalf("outcome_unknown message %q", msg)
	}
}

// syncLog is a log buffer the commit goroutines write to.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestUnansweredCommitThatLanded: a batch whose COMMIT reached PostgreSQL, which then
// stopped before it answered, is reported outcome_unknown and logged as perhaps
// written; once PostgreSQL answers again (and not before), its users go to OnUncertain,
// by which time the batch's outcome is settled and visible: the notification is stored,
// and the caller's retry with its key stores nothing more.
func TestUnansweredCommitThatLanded(t *testing.T) {
	pg := pgtest.OwnWith(t, pgtest.Options{Settings: []string{"synchronous_commit=on"}})
	url := pg.NewDatabase(t)
	store, err := postgres.OpenAndMigrate(context.Background(), url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var logs syncLog
	uncertain := make(chan []string, 4)
	c := spawn(t, store, persist.Options{
		CommitTimeout: time.Second, ProbeInterval: 50 * time.Millisecond,
		OnUncertain: func(users []string) { uncertain <- users },
		Log:         slog.New(slog.NewTextHandler(&logs, nil)),
	})
	ctx := context.Background()
	watcher, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)

	release := pg.HoldCommits(t, url)
	answered := make(chan error, 1)
	go func() {
		_, err := c.Write(context.Background(), keyedOp("landed", "k1"))
		answered <- err
	}()
	poll.Until(t, "the batch's COMMIT to reach PostgreSQL", 10*time.Second, func() bool {
		var n int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event = 'SyncRep' AND query = 'COMMIT' AND datname = current_database()`).Scan(&n)
		return err == nil && n > 0
	})
	resume := pause(t, pg)
	err = <-answered // when CommitTimeout passes
	if herald.ErrorCode(err) != herald.CodeOutcomeUnknown {
		t.Fatalf("a commit sent and not answered: %v, want outcome_unknown", err)
	}
	select {
	case users := <-uncertain:
		t.Fatalf("OnUncertain(%v) while PostgreSQL is stopped: the users would be re-read before the outcome is known", users)
	default:
	}
	resume()
	release()
	select {
	case users := <-uncertain:
		if !slices.Equal(users, []string{"landed"}) {
			t.Fatalf("OnUncertain(%v), want [landed]", users)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("OnUncertain not called within 30s of PostgreSQL resuming")
	}
	if n, err := store.UnreadCount(ctx, "landed"); err != nil || n != 1 {
		t.Fatalf("when OnUncertain ran, the batch had %d notifications visible (%v), want 1: its outcome was not settled yet", n, err)
	}
	if _, err := c.Write(ctx, keyedOp("landed", "k1")); err != nil {
		t.Fatalf("retry with the same key: %v", err)
	}
	if n, _ := store.UnreadCount(ctx, "landed"); n != 1 {
		t.Fatalf("retried with its key: %d stored, want 1", n)
	}
	text := logs.String()
	if !strings.Contains(text, "may or may not be written") || strings.Contains(text, "not written") {
		t.Fatalf("log of the unanswered commit:\n%s", text)
	}
}
