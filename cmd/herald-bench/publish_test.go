package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

type createBody struct {
	ReceiverID  string       `json:"receiverId"`
	ReceiverIDs []string     `json:"receiverIds"`
	Type        string       `json:"type"`
	Payload     benchPayload `json:"payload"`
	Items       []createBody `json:"items"`
}

func TestRequestBodies(t *testing.T) {
	p := &publishing{users: []string{"bench-r-0", "bench-r-1", "bench-r-2"}}
	var single createBody
	if err := json.Unmarshal(p.body(nil, 4, 1, 77), &single); err != nil {
		t.Fatal(err)
	}
	if single.ReceiverID != "bench-r-1" || single.Type == "" || single.Payload != (benchPayload{T: 77, M: 4}) {
		t.Fatalf("single body = %+v", single)
	}

	var batch createBody
	if err := json.Unmarshal(p.body(nil, 2, 3, 88), &batch); err != nil {
		t.Fatal(err)
	}
	if len(batch.Items) != 3 {
		t.Fatalf("batch body has %d items", len(batch.Items))
	}
	for i, it := range batch.Items {
		m := int64(2 + i)
		if it.ReceiverID != p.users[m%3] || it.Payload != (benchPayload{T: 88, M: m}) {
			t.Errorf("item %d = %+v", i, it)
		}
	}

	var bc createBody
	if err := json.Unmarshal(broadcastBody(p.users, 99, 1000), &bc); err != nil {
		t.Fatal(err)
	}
	if strings.Join(bc.ReceiverIDs, ",") != strings.Join(p.users, ",") || bc.Payload != (benchPayload{T: 99, M: 1000}) || bc.Type == "" {
		t.Fatalf("broadcast body = %+v", bc)
	}
}

// TestPublishingPacesAndCounts runs publishers against a stand-in for the REST API that
// acknowledges every other request.
func TestPublishingPacesAndCounts(t *testing.T) {
	var mu sync.Mutex
	var n int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		n++
		odd := n%2 == 1
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer key" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if odd {
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"error":{"code":"unavailable"}}`)
	}))
	defer srv.Close()

	start := time.Now()
	p := &publishing{
		rest: newREST(srv.URL, "key", 4), ledger: newLedger(1000), users: []string{"a", "b"},
		rate: 200, start: start, end: start.Add(250 * time.Millisecond), mode: publishBoth, batchSize: 5,
	}
	p.run(context.Background(), 4)
	// 200/s for 0.25 s: markers 0..49 are due before the end, and a batch of 5 that
	// starts at 49 runs over by 4 at most. Single and batch publishers share the pace.
	tl := p.ledger.tally(0)
	if tl.Sent < 1 || tl.Sent > 54 {
		t.Errorf("sent %d notifications, want at most 54", tl.Sent)
	}
	failures, firstErr := p.stats.failures()
	if failures[http.StatusServiceUnavailable] == 0 || p.stats.acked.Load() == 0 {
		t.Errorf("acked %d, failures %v", p.stats.acked.Load(), failures)
	}
	if firstErr == nil || !strings.Contains(firstErr.Error(), "unavailable") {
		t.Errorf("first error = %v, want the response body", firstErr)
	}
	if tl.Acked != p.stats.acked.Load() {
		t.Errorf("ledger acked %d, stats %d", tl.Acked, p.stats.acked.Load())
	}
}
