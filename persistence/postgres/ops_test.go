package postgres

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/persistence"
)

// The writes that are ops, as the persistence actor sends them: each applied alone.

func applyOne(t testing.TB, s persistence.Applier, now time.Time, op persistence.Op) (persistence.Result, error) {
	t.Helper()
	res, err := s.Apply(t.Context(), now, []persistence.Op{op})
	if err != nil {
		return persistence.Result{}, err
	}
	if len(res) != 1 {
		t.Fatalf("Apply returned %d results for 1 op", len(res))
	}
	return res[0], res[0].Err
}

func setContact(t testing.TB, s persistence.Applier, user string, c persistence.Contact) error {
	t.Helper()
	_, err := applyOne(t, s, persistence.Now(), persistence.Op{Kind: persistence.OpSetContact, UserID: user, Contact: c})
	return err
}

func setPreferences(t testing.TB, s persistence.Applier, user string, p persistence.Preferences) error {
	t.Helper()
	_, err := applyOne(t, s, persistence.Now(), persistence.Op{Kind: persistence.OpSetPreferences, UserID: user, Preferences: p})
	return err
}

func finishDeliveries(t testing.TB, s persistence.Applier, now time.Time, outcomes []persistence.Outcome) error {
	t.Helper()
	_, err := applyOne(t, s, now, persistence.Op{Kind: persistence.OpFinishDeliveries, Outcomes: outcomes})
	return err
}

func retryDelivery(t testing.TB, s persistence.Applier, now time.Time, id string) (persistence.Delivery, error) {
	t.Helper()
	r, err := applyOne(t, s, now, persistence.Op{Kind: persistence.OpRetryDelivery, ID: id})
	if err != nil {
		return persistence.Delivery{}, err
	}
	if r.Delivery == nil {
		t.Fatalf("OpRetryDelivery of %s succeeded without a delivery", id)
	}
	return *r.Delivery, nil
}

// prune sends OpPrune until the op reports nothing more to delete, and returns how many
// entries went.
func prune(t testing.TB, s persistence.Applier, cutoff time.Time) (int64, error) {
	t.Helper()
	var total int64
	for {
		r, err := applyOne(t, s, persistence.Now(), persistence.Op{Kind: persistence.OpPrune, Cutoff: cutoff})
		total += r.Pruned
		if err != nil || !r.More {
			return total, err
		}
	}
}
