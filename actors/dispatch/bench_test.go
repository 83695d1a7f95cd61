package dispatch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anthdm/hollywood/actor"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/actors/dispatch"
	"github.com/heraldhq/herald/actors/dispatch/webhook"
	"github.com/heraldhq/herald/persistence"
	"github.com/heraldhq/herald/persistence/embedded"
)

// BenchmarkWebhookDeliveries: 1,000 webhook deliveries per op, from the embedded
// store's outbox to a real HTTP receiver over loopback, signed, outcomes recorded.
func BenchmarkWebhookDeliveries(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	store, err := embedded.Open(b.TempDir(), embedded.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	sender, err := webhook.New(webhook.Options{Secret: []byte("bench-secret-0123456789abcdef0123")})
	if err != nil {
		b.Fatal(err)
	}
	engine, _ := actor.NewEngine(actor.NewEngineConfig())
	writer := spawnWriter(b, engine, store)
	defer stopWriter(b, engine, writer)
	pid := engine.Spawn(dispatch.New(dispatch.Options{
		Claimer: store,
		Writer:  writer,
		Senders: map[herald.Channel]dispatch.Sender{herald.ChannelWebhook: dispatch.Webhook{Sender: sender, URLs: []string{srv.URL}}},
		Poll:    time.Millisecond,
	}), "dispatch")
	defer func() {
		done := make(chan struct{})
		engine.Send(pid, dispatch.Drain{Done: done})
		<-done
		<-engine.Poison(pid).Done()
	}()
	items := make([]herald.NewNotification, 1000)
	for i := range items {
		items[i] = herald.NewNotification{ReceiverID: "u", Type: "t", Channels: []herald.Channel{herald.ChannelWebhook}}
		_ = items[i].Validate(herald.Caller{Service: true}, herald.ValidateOptions{})
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := store.Apply(context.Background(), persistence.Now(), []persistence.Op{{Kind: persistence.OpCreate, Creates: items}}); err != nil {
			b.Fatal(err)
		}
		engine.Send(pid, dispatch.Wake{})
		want := int64(1000 * (i + 1))
		for got.Load() < want {
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(got.Load())/b.Elapsed().Seconds(), "deliveries/s")
}
