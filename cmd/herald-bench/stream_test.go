package main

import (
	"testing"

	"github.com/google/uuid"
)

func TestStreamBookkeeping(t *testing.T) {
	id := func(n byte) uuid.UUID { return uuid.UUID{15: n} }
	type step struct {
		snapshot bool
		seq      int64
		id       uuid.UUID
		fresh    bool
	}
	tests := []struct {
		name  string
		steps []step
		want  streamCounts
		last  int64
	}{{
		name:  "in order after a snapshot",
		steps: []step{{snapshot: true, seq: 0}, {seq: 1, id: id(1), fresh: true}, {seq: 2, id: id(2), fresh: true}, {seq: 3, id: id(3), fresh: true}},
		want:  streamCounts{Entries: 3, Snapshots: 1},
		last:  3,
	}, {
		name:  "snapshot of an existing user sets the baseline",
		steps: []step{{snapshot: true, seq: 41}, {seq: 42, id: id(1), fresh: true}},
		want:  streamCounts{Entries: 1, Snapshots: 1},
		last:  42,
	}, {
		name:  "the same seq twice",
		steps: []step{{snapshot: true}, {seq: 1, id: id(1), fresh: true}, {seq: 1, id: id(1)}},
		want:  streamCounts{Entries: 2, Duplicates: 1, Snapshots: 1},
		last:  1,
	}, {
		name:  "the same id under a new seq",
		steps: []step{{snapshot: true}, {seq: 1, id: id(1), fresh: true}, {seq: 2, id: id(1)}},
		want:  streamCounts{Entries: 2, Duplicates: 1, Snapshots: 1},
		last:  1,
	}, {
		name:  "the same seq with another id",
		steps: []step{{snapshot: true}, {seq: 1, id: id(1), fresh: true}, {seq: 1, id: id(2)}},
		want:  streamCounts{Entries: 2, Duplicates: 1, Snapshots: 1},
		last:  1,
	}, {
		name:  "a gap is counted by the entries it skips",
		steps: []step{{snapshot: true}, {seq: 1, id: id(1), fresh: true}, {seq: 5, id: id(5), fresh: true}, {seq: 6, id: id(6), fresh: true}, {seq: 8, id: id(8), fresh: true}},
		want:  streamCounts{Entries: 4, Gaps: 2, Skipped: 4, Snapshots: 1},
		last:  8,
	}, {
		name:  "a gap right after the snapshot",
		steps: []step{{snapshot: true, seq: 0}, {seq: 2, id: id(2), fresh: true}},
		want:  streamCounts{Entries: 1, Gaps: 1, Skipped: 1, Snapshots: 1},
		last:  2,
	}, {
		name:  "reordered: late but new",
		steps: []step{{snapshot: true}, {seq: 2, id: id(2), fresh: true}, {seq: 1, id: id(1), fresh: true}},
		want:  streamCounts{Entries: 2, Gaps: 1, Skipped: 1, Reordered: 1, Snapshots: 1},
		last:  2,
	}, {
		name:  "entries without an id (read events) are checked by seq alone",
		steps: []step{{snapshot: true}, {seq: 1, fresh: true}, {seq: 1}, {seq: 2, fresh: true}},
		want:  streamCounts{Entries: 3, Duplicates: 1, Snapshots: 1},
		last:  2,
	}, {
		name:  "without a snapshot the first entry is the baseline (resumed with since)",
		steps: []step{{seq: 10, id: id(10), fresh: true}, {seq: 11, id: id(11), fresh: true}},
		want:  streamCounts{Entries: 2},
		last:  11,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s stream
			for i, st := range tt.steps {
				if st.snapshot {
					s.snapshot(st.seq)
					continue
				}
				if fresh := s.entry(st.seq, st.id); fresh != st.fresh {
					t.Errorf("step %d (seq %d): fresh = %v, want %v", i, st.seq, fresh, st.fresh)
				}
			}
			if s.counts != tt.want {
				t.Errorf("counts = %+v, want %+v", s.counts, tt.want)
			}
			if s.last != tt.last {
				t.Errorf("last = %d, want %d", s.last, tt.last)
			}
		})
	}
}

func TestStreamCountsAdd(t *testing.T) {
	a := streamCounts{1, 2, 3, 4, 5, 6}
	a.add(streamCounts{10, 20, 30, 40, 50, 60})
	if a != (streamCounts{11, 22, 33, 44, 55, 66}) {
		t.Fatalf("add = %+v", a)
	}
}
