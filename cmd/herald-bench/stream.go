package main

import "github.com/google/uuid"

// stream is the bookkeeping of one user's event log as one client sees it, across all
// its connections: seq must grow by exactly one per entry and no notification may come
// twice. It is owned by the client's goroutine.
type stream struct {
	started bool  // a snapshot (or the first entry) has set the baseline
	last    int64 // the highest seq seen: the cursor for ?since=
	ids     map[uuid.UUID]struct{}
	counts  streamCounts
}

// streamCounts are what a stream found. Sums of them make a scenario's checks.
type streamCounts struct {
	Entries    int64 // log entries received, duplicates included
	Duplicates int64 // entries whose notification id, or seq, this socket had seen before
	Reordered  int64 // entries with a new id but a seq below one already seen
	Gaps       int64 // times seq jumped by more than one
	Skipped    int64 // seqs those jumps left out
	Snapshots  int64 // unread-notifications frames
}

func (c *streamCounts) add(o streamCounts) {
	c.Entries += o.Entries
	c.Duplicates += o.Duplicates
	c.Reordered += o.Reordered
	c.Gaps += o.Gaps
	c.Skipped += o.Skipped
	c.Snapshots += o.Snapshots
}

// snapshot records an unread-notifications frame: seq is the latest log position, the
// baseline that the next entry must follow.
func (s *stream) snapshot(seq int64) {
	s.counts.Snapshots++
	s.started = true
	s.last = seq
}

// entry records a log entry and reports whether its notification is new to this
// socket (a reordered one is: it arrived, out of place). id is the notification's id,
// uuid.Nil for entries without one.
func (s *stream) entry(seq int64, id uuid.UUID) (fresh bool) {
	s.counts.Entries++
	seenID := false
	if id != uuid.Nil {
		if _, seenID = s.ids[id]; !seenID {
			if s.ids == nil {
				s.ids = make(map[uuid.UUID]struct{})
			}
			s.ids[id] = struct{}{}
		}
	}
	switch {
	case seenID || s.started && seq == s.last:
		s.counts.Duplicates++
		return false
	case s.started && seq < s.last:
		// Without a set of every seq, a new id below the cursor is either a
		// reordering or a seq reused; both break the contract.
		s.counts.Reordered++
		return true
	}
	if s.started && seq > s.last+1 {
		s.counts.Gaps++
		s.counts.Skipped += seq - s.last - 1
	}
	s.started = true
	s.last = seq
	return true
}
