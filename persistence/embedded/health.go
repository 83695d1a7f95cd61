package embedded

import (
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/persistence"
)

// probeInterval is how often Ping, while the last commit failed, tries a commit of its
// own: a public /readyz polled in a loop costs at most one fsync a second.
const probeInterval = time.Second

// commits records how the store's commits went, for Ping: a file that can be read
// but not written (a full disk, a file size limit, a read-only remount, an I/O error)
// answers every read while every write fails.
type commits struct {
	mu       sync.Mutex
	failed   error     // the last commit's failure; nil once a commit succeeds
	failedAt time.Time // when it failed
	probedAt time.Time // when Ping last tried a commit of its own

	probe sync.Mutex // one probe at a time
}

// done records the outcome of a commit: err is what bbolt's commit returned, nil for
// a commit that went through.
func (c *commits) done(err error, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.failed = nil
		return
	}
	c.failed, c.failedAt = err, at
}

// failing returns the last commit's failure, nil when it succeeded (or none was tried).
func (c *commits) failing() (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failedAt, c.failed
}

// commit runs fn in a write transaction and records the outcome of its commit. An
// error of fn's own (a refused op, errNothingChanged, a corrupt record) rolls back and
// says nothing of the storage; any other error is bbolt's writing, growing or syncing
// the file, or the store being closed, and counts as a failed commit.
func (s *Store) commit(fn func(*bolt.Tx) error) error {
	var fnErr error
	err := s.db.Update(func(tx *bolt.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if fnErr == nil {
		s.commits.done(err, time.Now())
	}
	return err
}

// writable reports an error wrapping persistence.ErrCommitsFailing while the last
// commit failed and none has succeeded since. In that state it tries a commit of its
// own (an empty write transaction: bbolt writes its freelist and meta page and syncs
// the file), at most once per probeInterval, so that a store whose disk has room again
// is found writable without waiting for traffic that a load balancer no longer sends.
func (s *Store) writable() error {
	if _, err := s.commits.failing(); err == nil {
		return nil
	}
	s.commits.probe.Lock()
	defer s.commits.probe.Unlock()
	s.commits.mu.Lock()
	due := time.Since(s.commits.probedAt) >= probeInterval
	if due {
		s.commits.probedAt = time.Now()
	}
	s.commits.mu.Unlock()
	if due {
		if s.commit(func(*bolt.Tx) error { return nil }) == nil {
			return nil
		}
	}
	at, err := s.commits.failing()
	if err == nil {
		return nil // a batch went through meanwhile
	}
	return fmt.Errorf("embedded store: %w: the last commit, %s ago, failed: %v",
		persistence.ErrCommitsFailing, time.Since(at).Round(time.Millisecond), err)
}
