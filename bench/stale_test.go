package main

import (
	"testing"
	"time"
)

// TestCountStale runs the checker over synthetic histories: a read that
// returns an older version than one acknowledged before it began is stale;
// a write acknowledged while the read ran, or after, does not bind it.
func TestCountStale(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	writes := []versionWrite{{0, at(0)}, {1, at(1000)}, {2, at(2000)}, {3, at(3000)}}
	for _, tc := range []struct {
		name      string
		reads     []versionRead
		stale     int64
		worstLags int64
	}{
		{"fresh reads", []versionRead{{0, at(500)}, {1, at(1500)}, {3, at(3500)}}, 0, 0},
		{"read began before the write was acknowledged", []versionRead{{1, at(1999)}}, 0, 0},
		{"read began at the acknowledgement", []versionRead{{1, at(2000)}}, 0, 0},
		{"read newer than needed (a write in flight seen)", []versionRead{{3, at(2500)}}, 0, 0},
		{"one version behind", []versionRead{{1, at(2001)}}, 1, 1},
		{"three versions behind", []versionRead{{0, at(3001)}, {2, at(3002)}}, 2, 3},
		{"before any write", []versionRead{{-5, at(-1)}}, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := countStale(writes, tc.reads)
			if got.Stale != tc.stale || got.WorstLag != tc.worstLags || got.Reads != int64(len(tc.reads)) {
				t.Errorf("got %+v, want %d stale of %d, worst lag %d", got, tc.stale, len(tc.reads), tc.worstLags)
			}
		})
	}
}

// TestCountStaleUnsortedWrites: the writer's records may arrive in any
// order (several writers); the newest version acknowledged before the read
// is what binds it, not the last one appended.
func TestCountStaleUnsortedWrites(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	writes := []versionWrite{{5, t0.Add(2 * time.Second)}, {7, t0.Add(time.Second)}, {6, t0.Add(3 * time.Second)}}
	got := countStale(writes, []versionRead{{6, t0.Add(4 * time.Second)}, {7, t0.Add(4 * time.Second)}})
	if got.Stale != 1 || got.WorstLag != 1 {
		t.Fatalf("got %+v, want the read of 6 stale (7 was acknowledged first)", got)
	}
}
