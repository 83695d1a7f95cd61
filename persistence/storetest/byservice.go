package storetest

import (
	"testing"
	"time"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/persistence"
)

func init() {
	outboxTests = append(outboxTests, struct {
		name string
		fn   func(t *testing.T, open Opener)
	}{"OutboxByService", testOutboxByService})
}

// testOutboxByService: a delivery row records whether a service created its
// notification (only then is the payload's "email" honoured), and the flag reads back
// as written through claims, listings in every state and a dead letter's retry. A
// service's notification, its escalation and a flushed digest say so; a notification
// no service created (one planned with ByService false) does not.
func testOutboxByService(t *testing.T, open Opener) {
	s := open(t, persistence.DefaultRetention)
	t0 := persistence.Now()
	service := withChannels(note(t, "dora", "t", 1), herald.ChannelEmail, herald.ChannelWebhook)
	user := withChannels(note(t, "dora", "t", 2), herald.ChannelEmail, herald.ChannelWebhook)
	user.ByService = false // Validate never gives a user these channels; the store keeps what it is given
	esc := note(t, "dora", "t", 3)
	esc.Escalate = &herald.Escalation{After: time.Minute, Channel: herald.ChannelEmail}
	if !service.ByService || !esc.ByService {
		t.Fatal("a service's notification is not ByService after Validate")
	}
	ns := created(t, s, t0, service, user, esc)
	want := map[string]bool{ns[0].ID: true, ns[1].ID: false, ns[2].ID: true}
	check := func(what string, ds []persistence.Delivery, n int) {
		t.Helper()
		if len(ds) != n {
			t.Fatalf("%s: %d deliveries, want %d: %+v", what, len(ds), n, ds)
		}
		for _, d := range ds {
			w, ok := want[d.NotificationID]
			if !ok {
				t.Fatalf("%s: delivery of an unknown notification: %+v", what, d)
			}
			if d.ByService != w {
				t.Fatalf("%s: delivery %s of notification %s has ByService %v, want %v", what, d.ID, d.NotificationID, d.ByService, w)
			}
		}
	}
	check("pending", listDeliveries(t, s, persistence.DeliveryPending), 5)
	ds := claim(t, s, t0, time.Minute, 10)
	check("claimed", ds, 4)
	var outcomes []persistence.Outcome
	for _, d := range ds {
		// Each notification ends with one delivery sent and one dead.
		outcomes = append(outcomes, persistence.Outcome{ID: d.ID, Sent: d.Channel == herald.ChannelEmail, Dead: d.Channel == herald.ChannelWebhook, Error: "gave up"})
	}
	finish(t, s, t0, outcomes...)
	check("sent", listDeliveries(t, s, persistence.DeliverySent), 2)
	dead := listDeliveries(t, s, persistence.DeliveryDead)
	check("dead", dead, 2)
	for _, d := range dead {
		r, err := RetryDelivery(t, s, t0, d.ID)
		if err != nil {
			t.Fatalf("RetryDelivery: %v", err)
		}
		check("retried", []persistence.Delivery{r}, 1)
	}
	check("claimed after the retries", claim(t, s, t0.Add(time.Second), time.Minute, 10), 2)
	check("the escalation", claim(t, s, t0.Add(time.Minute), time.Minute, 10), 1)

	// A digest is made by a rule: its notification's delivery says a service made it.
	const w = time.Minute
	apply(t, s, t0, create(digested(t, withChannels(note(t, "dora", "d", 4), herald.ChannelEmail), "r", w, "")))
	ks := due(t, s, t0.Add(w))
	if len(ks) != 1 {
		t.Fatalf("due digests: %v", ks)
	}
	flushed := flush(t, s, t0.Add(w), ks[0])
	if len(flushed.Notifications) != 1 {
		t.Fatalf("flush: %+v", flushed)
	}
	want[flushed.Notifications[0].ID] = true
	check("the digest's email", claim(t, s, t0.Add(w), time.Minute, 10), 1)
}
