package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEventBody(t *testing.T) {
	p := &publishing{users: []string{"bench-r-0", "bench-r-1", "bench-r-2", "bench-r-3"}}
	var ev struct {
		Name string `json:"name"`
		Data struct {
			T           int64    `json:"t"`
			M           int64    `json:"m"`
			ReceiverIDs []string `json:"receiverIds"`
		} `json:"data"`
	}
	if err := json.Unmarshal(p.event(nil, 6, 3, 77), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Name != fanoutEvent || ev.Data.T != 77 || ev.Data.M != 6 ||
		strings.Join(ev.Data.ReceiverIDs, ",") != "bench-r-2,bench-r-3,bench-r-0" {
		t.Fatalf("event body = %+v", ev)
	}
}

// TestEventReceipt: every receiver of an event maps it to its own marker, which is the
// marker the publisher sent to it; anyone else is not a receiver.
func TestEventReceipt(t *testing.T) {
	const users, fanout = 7, 3
	for first := int64(0); first < 40; first += fanout {
		got := map[int64]bool{}
		for idx := range int64(users) {
			m, ok := eventReceipt(first, idx, users, fanout)
			if !ok {
				continue
			}
			if m < first || m >= first+fanout || m%users != idx {
				t.Errorf("event %d, user %d: marker %d", first, idx, m)
			}
			got[m] = true
		}
		if len(got) != fanout {
			t.Errorf("event %d: %d receivers, want %d", first, len(got), fanout)
		}
	}
}

func TestEventNotifications(t *testing.T) {
	for in, want := range map[string]int64{
		`{"notifications":10,"rules":["r"],"data":[{"id":"x"}]}`:                 10,
		`{"rules":[],"notifications":0,"data":[]}`:                               0,
		`{"notifications":3,"data":[` + strings.Repeat(`{"a":1},`, 100) + `{}]}`: 3,
	} {
		if got, err := eventNotifications([]byte(in)); err != nil || got != want {
			t.Errorf("eventNotifications(%.40q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{``, `{}`, `{"notifications":"3"}`, `[1]`, `{"rules":[}`} {
		if n, err := eventNotifications([]byte(in)); err == nil {
			t.Errorf("eventNotifications(%q) = %d, want an error", in, n)
		}
	}
}

// fakeEvents stands in for POST /events, answering as a server with the bench's rule
// would, fanned out to per notifications for each receiver, with payloads from payload.
type fakeEvents struct {
	per     int
	payload func(t, m string) string

	mu     sync.Mutex
	events int
}

func (fe *fakeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Data struct {
			T           json.Number `json:"t"`
			M           json.Number `json:"m"`
			ReceiverIDs []string    `json:"receiverIds"`
		} `json:"data"`
	}
	if r.URL.Path != "/events" || json.NewDecoder(r.Body).Decode(&ev) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	fe.mu.Lock()
	fe.events++
	fe.mu.Unlock()
	var data []string
	for _, u := range ev.Data.ReceiverIDs {
		for range fe.per {
			data = append(data, `{"id":"0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b","receiverId":"`+u+`","payload":`+fe.payload(ev.Data.T.String(), ev.Data.M.String())+`}`)
		}
	}
	rules := `[]`
	if len(data) > 0 {
		rules = `["` + fanoutRule + `"]`
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, `{"notifications":`+itoa(len(data))+`,"rules":`+rules+`,"data":[`+strings.Join(data, ",")+`]}`)
}

func templated(t, m string) string { return `{"t":"` + t + `","m":"` + m + `"}` }

func TestProbeEvents(t *testing.T) {
	tests := []struct {
		name string
		fe   *fakeEvents
		want string // in the error; "" for none
	}{
		{"the bench's rule", &fakeEvents{per: 1, payload: templated}, ""},
		{"numbers, as a hand-written payload might have them", &fakeEvents{per: 1, payload: func(t, m string) string { return `{"m":` + m + `,"t":` + t + `}` }}, ""},
		{"no rule", &fakeEvents{per: 0, payload: templated}, "-print-rules"},
		{"two rules", &fakeEvents{per: 2, payload: templated}, "only the bench's rule"},
		{"another payload", &fakeEvents{per: 1, payload: func(string, string) string { return `{"message":"hi"}` }}, "-print-rules"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.fe)
			defer srv.Close()
			s := &session{t: &target{base: srv.URL, apiKey: "key"}, run: "r"}
			err := s.probeEvents(t.Context())
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("probe: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("probe error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// TestEventPublishing runs event publishers against the stand-in: the rate counts
// events, and an answer whose count is not the fan-out is not acknowledged.
func TestEventPublishing(t *testing.T) {
	fe := &fakeEvents{per: 1, payload: templated}
	srv := httptest.NewServer(fe)
	defer srv.Close()
	start := time.Now()
	p := &publishing{
		rest: newREST(srv.URL, "key", 4), ledger: newLedger(10000), users: []string{"a", "b", "c", "d", "e"},
		rate: 100, start: start, end: start.Add(300 * time.Millisecond), mode: publishEvents, fanout: 4,
	}
	p.run(t.Context(), 4)
	// 100 events/s for 0.3 s: events 0..29 are due before the end.
	ev := p.stats.events.Load()
	if ev < 1 || ev > 30 {
		t.Errorf("%d events, want 1..30", ev)
	}
	tl := p.ledger.tally(0)
	if tl.Acked != 4*ev || p.stats.acked.Load() != tl.Acked || p.stats.offFanout.Load() != 0 {
		t.Errorf("%d events, ledger acked %d, stats acked %d, off %d", ev, tl.Acked, p.stats.acked.Load(), p.stats.offFanout.Load())
	}

	fe.per = 2 // another rule matches too
	start = time.Now()
	p = &publishing{
		rest: newREST(srv.URL, "key", 1), ledger: newLedger(10000), users: []string{"a", "b"},
		rate: 50, start: start, end: start.Add(100 * time.Millisecond), mode: publishEvents, fanout: 2,
	}
	p.run(t.Context(), 1)
	if p.stats.events.Load() == 0 || p.stats.offFanout.Load() != p.stats.events.Load() || p.stats.acked.Load() != 0 {
		t.Errorf("events %d, off %d, acked %d: every event is off", p.stats.events.Load(), p.stats.offFanout.Load(), p.stats.acked.Load())
	}
	if !strings.Contains(p.stats.firstOff, `"notifications":4`) {
		t.Errorf("first off answer = %q", p.stats.firstOff)
	}
}

func TestPrintRules(t *testing.T) {
	var stdout, stderr strings.Builder
	if code := run(t.Context(), []string{"-print-rules"}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit status %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"name: " + fanoutRule, "match: " + fanoutEvent, "receiver: receiverIds", `t: "{{.data.t}}"`, `m: "{{.data.m}}"`} {
		if !strings.Contains(out, want) {
			t.Errorf("the rules lack %q:\n%s", want, out)
		}
	}
}

func TestEventsOptions(t *testing.T) {
	base := []string{"-jwt-secret", "s", "-api-key", "k", "-scenario", "events"}
	for _, tt := range []struct {
		args []string
		ok   bool
	}{
		{nil, true},
		{[]string{"-n", "5", "-fanout", "5"}, true},
		{[]string{"-n", "5", "-fanout", "6"}, false},
		{[]string{"-fanout", "0"}, false},
		{[]string{"-n", "2000", "-fanout", "1001"}, false},
	} {
		_, err := parseOptions(append(append([]string{}, base...), tt.args...), io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("%v: err = %v", tt.args, err)
		}
	}
}
