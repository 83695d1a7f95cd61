package storetest

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/persistence"
)

// The writes that are ops, as the persistence actor sends them: each applied alone, for
// the suite and for a store's own tests. Each returns the op's error (its own failure
// or the transaction's).

// ApplyOne applies op alone and returns its result.
func ApplyOne(t testing.TB, s persistence.Applier, now time.Time, op persistence.Op) (persistence.Result, error) {
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

// SetContact applies an OpSetContact.
func SetContact(t testing.TB, s persistence.Applier, user string, c persistence.Contact) error {
	t.Helper()
	_, err := ApplyOne(t, s, persistence.Now(), persistence.Op{Kind: persistence.OpSetContact, UserID: user, Contact: c})
	return err
}

// SetPreferences applies an OpSetPreferences.
func SetPreferences(t testing.TB, s persistence.Applier, user string, p persistence.Preferences) error {
	t.Helper()
	_, err := ApplyOne(t, s, persistence.Now(), persistence.Op{Kind: persistence.OpSetPreferences, UserID: user, Preferences: p})
	return err
}

// FinishDeliveries applies an OpFinishDeliveries.
func FinishDeliveries(t testing.TB, s persistence.Applier, now time.Time, outcomes []persistence.Outcome) error {
	t.Helper()
	_, err := ApplyOne(t, s, now, persistence.Op{Kind: persistence.OpFinishDeliveries, Outcomes: outcomes})
	return err
}

// RetryDelivery applies an OpRetryDelivery and returns the delivery it revived.
func RetryDelivery(t testing.TB, s persistence.Applier, now time.Time, id string) (persistence.Delivery, error) {
	t.Helper()
	r, err := ApplyOne(t, s, now, persistence.Op{Kind: persistence.OpRetryDelivery, ID: id})
	if err != nil {
		return persistence.Delivery{}, err
	}
	if r.Delivery == nil {
		t.Fatalf("OpRetryDelivery of %s succeeded without a delivery", id)
	}
	return *r.Delivery, nil
}

// Prune sends OpPrune until the op reports nothing more to delete, and returns how many
// entries went.
func Prune(t testing.TB, s persistence.Applier, cutoff time.Time) (int64, error) {
	t.Helper()
	var total int64
	for {
		r, err := ApplyOne(t, s, persistence.Now(), persistence.Op{Kind: persistence.OpPrune, Cutoff: cutoff})
		total += r.Pruned
		if err != nil || !r.More {
			return total, err
		}
	}
}
