package main

import (
	"slices"
	"sort"
	"time"
)

// The stale-read check of issue 13's cache workload. A writer bumps a
// version (a row in the table the readers aggregate) and records each new
// version with the time its reply arrived: by then it had certainly
// committed. Every read returns the version it saw, in the same statement
// (so in the same snapshot) as the aggregate, and records when it was sent.
// A read is stale when it returns a version older than one whose commit
// was acknowledged before the read began: no correct database (nor a
// correct cache) can answer it so. Writes acknowledged while the read ran
// may or may not be seen; that is never counted.

// versionWrite is one committed version: the writer's reply arrived at Acked.
type versionWrite struct {
	Version int64
	Acked   time.Time
}

// versionRead is one read of the version, sent at Began.
type versionRead struct {
	Version int64
	Began   time.Time
}

// staleCount is the check's verdict over one run.
type staleCount struct {
	Reads int64 // reads checked
	Stale int64 // reads older than a version acknowledged before they began
	// WorstLag is the largest number of versions a stale read was behind.
	WorstLag int64
}

// countStale checks every read against the writes. The writes need not be
// sorted, nor their versions increase with time (the check takes the
// largest version acknowledged before each read).
func countStale(writes []versionWrite, reads []versionRead) staleCount {
	ws := slices.Clone(writes)
	slices.SortFunc(ws, func(a, b versionWrite) int { return a.Acked.Compare(b.Acked) })
	// newest[i] is the largest version among ws[:i+1].
	newest := make([]int64, len(ws))
	for i, w := range ws {
		newest[i] = w.Version
		if i > 0 {
			newest[i] = max(newest[i], newest[i-1])
		}
	}
	c := staleCount{Reads: int64(len(reads))}
	for _, r := range reads {
		// The writes acknowledged strictly before the read began.
		n := sort.Search(len(ws), func(i int) bool { return !ws[i].Acked.Before(r.Began) })
		if n == 0 {
			continue
		}
		if want := newest[n-1]; r.Version < want {
			c.Stale++
			c.WorstLag = max(c.WorstLag, want-r.Version)
		}
	}
	return c
}
