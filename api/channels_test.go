package api_test

import (
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

// TestChannelsForServicesOnly: a user caller cannot make Herald send e-mail or signed
// webhooks. Asking for either channel is 403 forbidden on channels, single or batch,
// and stores nothing (no notification, no delivery row); a service may, and its
// delivery rows say a service created them.
func TestChannelsForServicesOnly(t *testing.T) {
	forEachStore(t, func(t *testing.T, e *env) {
		mallory := userToken(t, "mallory")
		attack := map[string]any{"receiverId": "victim", "type": "t",
			"payload": map[string]any{"email": "attacker@evil.example", "subject": "Reset your password", "text": "click here"}}
		for _, chans := range [][]string{{"email"}, {"webhook"}, {"realtime", "email"}, {"webhook", "realtime"}} {
			attack["channels"] = chans
			wantError(t, e.do("POST", "/notifications", mallory, attack), 403, herald.CodeForbidden, "channels")
		}
		attack["channels"] = []string{"email"}
		attack["idempotencyKey"] = "k1"
		wantError(t, e.do("POST", "/notifications", mallory, attack), 403, herald.CodeForbidden, "channels")
		delete(attack, "idempotencyKey")
		// A user batch is refused too (the batch route is for services).
		wantError(t, e.do("POST", "/notifications/batch", mallory, map[string]any{"items": []any{attack}}), 403, herald.CodeForbidden, "")
		wantError(t, e.do("POST", "/notifications/batch", mallory, map[string]any{
			"receiverIds": []string{"victim"}, "type": "t", "channels": []string{"webhook"}}), 403, herald.CodeForbidden, "")

		victim := userToken(t, "victim")
		if c := e.do("GET", "/notifications/unread/count", victim, nil).json(t); c["count"].(float64) != 0 {
			t.Fatalf("a refused create stored a notification: %v", c)
		}
		if ev := e.do("GET", "/notifications/events?since=0", victim, nil).json(t); len(ev["data"].([]any)) != 0 {
			t.Fatalf("a refused create logged an event: %v", ev)
		}
		if ds := pending(t, e); len(ds) != 0 {
			t.Fatalf("a refused create wrote deliveries: %+v", ds)
		}

		// A user may still notify through realtime, which writes no delivery.
		if r := e.do("POST", "/notifications", mallory, map[string]any{"receiverId": "victim", "type": "t", "channels": []string{"realtime"}}); r.code != 201 {
			t.Fatalf("user realtime create: %d %s", r.code, r.body)
		}
		if ds := pending(t, e); len(ds) != 0 {
			t.Fatalf("a realtime create wrote deliveries: %+v", ds)
		}

		// A service may ask for both, single and batch; each row records its creator.
		attack["channels"] = []string{"email"}
		if r := e.do("POST", "/notifications", testKey, attack); r.code != 201 {
			t.Fatalf("service email create: %d %s", r.code, r.body)
		}
		r := e.do("POST", "/notifications/batch", testKey, map[string]any{"items": []any{
			map[string]any{"receiverId": "victim", "type": "t", "channels": []string{"webhook"}},
			map[string]any{"receiverId": "other", "type": "t", "channels": []string{"email", "webhook"}},
		}})
		if r.code != 201 {
			t.Fatalf("service batch: %d %s", r.code, r.body)
		}
		ds := pending(t, e)
		if len(ds) != 4 {
			t.Fatalf("%d deliveries, want 4: %+v", len(ds), ds)
		}
		for _, d := range ds {
			if !d.ByService {
				t.Fatalf("a service's delivery does not say so: %+v", d)
			}
		}
	})
}

func pending(t *testing.T, e *env) []persistence.Delivery {
	t.Helper()
	ds, err := e.store.Deliveries(t.Context(), persistence.DeliveryPending, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
