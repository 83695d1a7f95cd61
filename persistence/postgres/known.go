package postgres

import (
	"sync"
	"sync/atomic"
)

// knownUsers is the set of users whose user_state row this store has seen committed. A
// row is never deleted, so a user once known stays known, on every node sharing the
// database: a batch skips inserting the rows of known users and only locks them
// (sqlLockUsers), and inserts the rows of the others first (sqlEnsureUsers). The set is
// bounded: when it reaches knownUsersMax it starts again empty, which costs the next
// batches of each user one insert that finds its row.
type knownUsers struct {
	m sync.Map // user id → struct{}
	n atomic.Int64
}

// knownUsersMax bounds the set: about 100 bytes an entry, so at most ~100 MB.
const knownUsersMax = 1 << 20

// unknown returns the users of sorted (sorted and unique) that are not known, in order;
// nil when all are.
func (k *knownUsers) unknown(sorted []string) []string {
	var out []string
	for i, u := range sorted {
		if _, ok := k.m.Load(u); ok {
			continue
		}
		if out == nil {
			out = make([]string, 0, len(sorted)-i)
		}
		out = append(out, u)
	}
	return out
}

// add records users whose rows are committed.
func (k *knownUsers) add(users []string) {
	for _, u := range users {
		if _, loaded := k.m.LoadOrStore(u, struct{}{}); !loaded && k.n.Add(1) > knownUsersMax {
			k.forget()
		}
	}
}

// forget starts the set again empty: a row was found missing (a database restored
// behind the node's back), so nothing known is trusted.
func (k *knownUsers) forget() {
	k.m.Clear()
	k.n.Store(0)
}
