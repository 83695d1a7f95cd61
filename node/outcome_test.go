package node_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/poll"
	"github.com/heraldhq/herald/node"
)

// frame is a server frame, as far as these tests read it.
type frame struct {
	Event string `json:"event"`
	Seq   int64  `json:"seq"`
	Data  struct {
		ID      string      `json:"id"`
		Code    herald.Code `json:"code"`
		Message string      `json:"message"`
	} `json:"data"`
}

// TestUncertainCommitReachesTheSocket: a create whose COMMIT reached PostgreSQL, which
// then stopped before answering, is answered 503 outcome_unknown over REST; it did land,
// and once PostgreSQL runs again the connected socket of its receiver gets it (seq 1)
// without any later entry to carry it. A mark-read sent on the socket in the same state
// is answered with an error frame of the same code.
func TestUncertainCommitReachesTheSocket(t *testing.T) {
	pg := pgtest.OwnWith(t, pgtest.Options{Settings: []string{"synchronous_commit=on"}})
	url := pg.NewDatabase(t)
	_, ln, _ := serveNode(t, node.Options{DatabaseURL: url, APIKeys: []string{oneWriterKey}})
	base := "http://" + ln.Addr().String()
	ctx := context.Background()
	watcher, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	commitWaits := func() bool {
		var n int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
WHERE wait_event = 'SyncRep' AND query = 'COMMIT' AND datname = current_database()`).Scan(&n)
		return err == nil && n > 0
	}

	tok, _ := signUser("u")
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/notifications/ws?token="+tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func(within time.Duration) (frame, error) {
		rctx, cancel := context.WithTimeout(ctx, within)
		defer cancel()
		_, b, err := ws.Read(rctx)
		var f frame
		if err == nil {
			var head struct{ Event string }
			if err = json.Unmarshal(b, &head); err == nil && head.Event != "unread-notifications" {
				err = json.Unmarshal(b, &f) // the snapshot's data is a list
			}
			f.Event = head.Event
		}
		return f, err
	}
	if f, err := read(10 * time.Second); err != nil || f.Event != "unread-notifications" {
		t.Fatalf("first frame: %+v %v", f, err)
	}

	release := pg.HoldCommits(t, url)
	type answer struct {
		code int
		body []byte
	}
	answered := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/notifications", strings.NewReader(`{"receiverId":"u","type":"t","idempotencyKey":"k1"}`))
		req.Header.Set("X-Api-Key", oneWriterKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			answered <- answer{0, []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, b}
	}()
	poll.Until(t, "the create's COMMIT to reach PostgreSQL", 10*time.Second, commitWaits)
	resume := pause(t, pg)
	a := <-answered // after the commit timeout, 10 s
	var body struct {
		Error struct {
			Code    herald.Code `json:"code"`
			Message string      `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil || a.code != 503 || body.Error.Code != herald.CodeOutcomeUnknown ||
		body.Error.Message != herald.OutcomeUnknownMessage {
		t.Fatalf("create whose commit went unanswered: %d %s, want 503 outcome_unknown", a.code, a.body)
	}
	resume()
	release()
	f, err := read(30 * time.Second)
	if err != nil || f.Event != "new-notification" || f.Seq != 1 {
		t.Fatalf("after PostgreSQL resumed, the socket got %+v (%v), want the stored notification, seq 1", f, err)
	}
	id := f.Data.ID

	// A mark-read frame whose commit goes unanswered: the error frame says so.
	release = pg.HoldCommits(t, url)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"event":"mark-read","data":{"id":"`+id+`"}}`)); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the mark-read's COMMIT to reach PostgreSQL", 10*time.Second, commitWaits)
	resume = pause(t, pg)
	f, err = read(30 * time.Second)
	if err != nil || f.Event != "error" || f.Data.Code != herald.CodeOutcomeUnknown || f.Data.Message != herald.OutcomeUnknownMessage {
		t.Fatalf("mark-read whose commit went unanswered: %+v (%v), want an error frame with outcome_unknown", f, err)
	}
	resume()
	release()
	if f, err := read(30 * time.Second); err != nil || f.Event != "notification-read" || f.Seq != 2 {
		t.Fatalf("after PostgreSQL resumed, the socket got %+v (%v), want the stored mark-read, seq 2", f, err)
	}
}

// pause stops pg and has it resumed at the end of the test if the test did not.
func pause(t *testing.T, pg *pgtest.Server) (resume func()) {
	t.Helper()
	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	done := false
	resume = func() {
		if !done {
			done = true
			if err := pg.Resume(); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	return resume
}
