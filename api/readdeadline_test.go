package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/persistence/postgres"
)

// TestReadsAnswerWhenStorageHangs: with PostgreSQL stopped (SIGSTOP, as a hung database
// host), a REST read is answered 503 unavailable once its read deadline passes, instead
// of waiting for the store; once PostgreSQL runs again, reads are served.
func TestReadsAnswerWhenStorageHangs(t *testing.T) {
	srv := pgtest.Own(t)
	ctx := context.Background()
	if err := srv.CreateDB(ctx, "hang"); err != nil {
		t.Fatal(err)
	}
	store, err := postgres.OpenAndMigrate(ctx, srv.URL("hang"), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	const readTimeout = time.Second
	e := newEnvWith(t, store, api.Options{ReadTimeout: readTimeout})
	ada := userToken(t, "ada")
	if r := e.do("GET", "/notifications/unread", ada, nil); r.code != http.StatusOK {
		t.Fatalf("before the stop: %d %s", r.code, r.body)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := srv.Resume(); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(resume)
	for _, path := range []string{"/notifications/unread", "/notifications/unread/count", "/notifications/events", "/notifications"} {
		start := time.Now()
		answered := make(chan response, 1)
		go func() { answered <- e.do("GET", path, ada, nil) }()
		select {
		case r := <-answered:
			wantError(t, r, http.StatusServiceUnavailable, herald.CodeUnavailable, "")
		case <-time.After(readTimeout + 10*time.Second):
			resume() // lets the request end, so the test can
			t.Fatalf("%s not answered within %s with storage stopped, want a 503 after about %s", path, time.Since(start), readTimeout)
		}
	}
	resume()
	r := e.do("GET", "/notifications/unread", ada, nil)
	for i := 0; r.code != http.StatusOK && i < 3; i++ { // a connection broken by the stop is dropped by the pool
		r = e.do("GET", "/notifications/unread", ada, nil)
	}
	if r.code != http.StatusOK {
		t.Fatalf("after the resume: %d %s", r.code, r.body)
	}
}
