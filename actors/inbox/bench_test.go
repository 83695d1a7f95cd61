package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/inbox"
	"github.com/heraldhq/herald/api/ws/wire"
	"github.com/heraldhq/herald/persistence/embedded"
)

func sampleEntry(user string, seq int64) herald.Entry {
	return herald.Entry{UserID: user, Seq: seq, Event: herald.EventCreated, Unread: seq, At: time.Now(),
		Notification: &herald.Notification{
			ID: "0192f7c4-8d2e-7b3a-9a61-3f1c2d4e5a6b", Object: "project.application.received",
			ReceiverID: user, SenderID: "user-9", Type: "project.role.application.created",
			Payload:  json.RawMessage(`{"message":"Ada applied for Backend in Atlas"}`),
			Channels: []herald.Channel{herald.ChannelRealtime}, CreatedAt: time.Now(), Seq: seq,
		}}
}

func BenchmarkEncodeEntry(b *testing.B) {
	e := sampleEntry("user-123", 42)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := wire.EncodeEntry(&e); err != nil {
			b.Fatal(err)
		}
	}
}

// countSocket counts frames and signals when want have arrived.
type countSocket struct {
	n    *atomic.Int64
	want *atomic.Int64
	done chan struct{}
}

func (s countSocket) Send(inbox.Frame) bool {
	if s.n.Add(1) == s.want.Load() {
		s.done <- struct{}{}
	}
	return true
}
func (countSocket) Close(wire.CloseCode, string)               {}
func (countSocket) Room() int                                  { return 1 << 30 }
func (countSocket) WaitRoom(context.Context, int) (int, error) { return 1 << 30, nil }

// BenchmarkFanOut: a committed batch of 1,000 entries split by the router and sent by
// the inboxes to every socket of each receiver. One op is one batch, delivered.
func BenchmarkFanOut(b *testing.B) {
	for _, c := range []struct{ users, sockets int }{{1000, 1}, {100, 3}, {1, 3}} {
		b.Run(fmt.Sprintf("users=%d/sockets=%d", c.users, c.sockets), func(b *testing.B) {
			store, err := embedded.Open(b.TempDir(), embedded.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			engine, _ := actor.NewEngine(actor.NewEngineConfig())
			router := engine.Spawn(inbox.NewRouter(inbox.Options{Store: store}), "inbox")
			defer func() { <-engine.Poison(router).Done() }()
			n, want := new(atomic.Int64), new(atomic.Int64)
			done := make(chan struct{}, 1)
			// Attach every socket and wait for their snapshots.
			want.Store(int64(c.users * c.sockets))
			for u := 0; u < c.users; u++ {
				for s := 0; s < c.sockets; s++ {
					engine.Send(router, inbox.Attach{User: fmt.Sprint("u", u), Socket: countSocket{n, want, done}})
				}
			}
			<-done
			seqs := make([]int64, c.users)
			onCommit := inbox.OnCommit(engine, router)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				entries := make([]herald.Entry, 1000)
				for i := range entries {
					u := i % c.users
					seqs[u]++
					entries[i] = sampleEntry(fmt.Sprint("u", u), seqs[u])
				}
				want.Add(int64(1000 * c.sockets))
				onCommit(entries)
				<-done
			}
			b.ReportMetric(float64(b.N*1000*c.sockets)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}
