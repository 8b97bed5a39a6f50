package cache

import (
	"testing"
	"time"
)

// TestFeedLagBound: a stream further behind than max lag bypasses its
// database (no fill, no hit) until it catches up; catching up after lag
// does not flush (nothing was missed), but the first release after the
// stream was down does.
func TestFeedLagBound(t *testing.T) {
	c := newTestCache(t, nil)
	f := &Feed{c: c, db: "db", maxLag: 100 * time.Millisecond}
	f.st.needFlush = true
	f.holdLocked()
	t0 := time.Now()
	f.setConnected(true, nil)
	f.probed(1000, t0)
	f.evaluate(t0)
	if !f.Status().Bypassed {
		t.Fatal("released before the stream reached the primary's position")
	}
	f.advance(1000, t0.Add(time.Millisecond))
	f.evaluate(t0.Add(10 * time.Millisecond))
	if f.Status().Bypassed {
		t.Fatal("held after catching up")
	}
	flushes := c.Stats().Invalidations[CauseFlush]
	if flushes != 1 {
		t.Fatalf("flushes after the first release: %d, want 1", flushes)
	}
	tok := c.versions.Token("db", []string{"t"})

	// The primary moves on; the stream does not follow.
	f.probed(2000, t0.Add(20*time.Millisecond))
	f.evaluate(t0.Add(150 * time.Millisecond))
	st := f.Status()
	if !st.Bypassed || st.LagBytes != 1000 {
		t.Fatalf("status past max lag: %+v, want bypassed, 1000 bytes behind", st)
	}
	if r := c.versions.Check(&tok, false, 0); r != RefuseInFlight {
		t.Fatalf("fill while behind: %v, want in_flight", r)
	}
	// Caught up with a sample taken 145ms ago: still past the bound.
	f.advance(2000, t0.Add(160*time.Millisecond))
	f.evaluate(t0.Add(165 * time.Millisecond))
	if !f.Status().Bypassed {
		t.Fatal("released though the last sample reached is older than max lag")
	}
	f.probed(2000, t0.Add(166*time.Millisecond))
	f.evaluate(t0.Add(170 * time.Millisecond))
	if f.Status().Bypassed {
		t.Fatal("held after catching up again")
	}
	if r := c.versions.Check(&tok, false, 0); r != RefuseNone {
		t.Fatalf("fill after catching up: %v (a lag is no gap: nothing to flush)", r)
	}

	f.setConnected(false, nil)
	if r := c.versions.Check(&tok, false, 0); r != RefuseInFlight {
		t.Fatalf("fill while down: %v, want in_flight", r)
	}
	t1 := t0.Add(time.Second)
	f.setConnected(true, nil)
	f.probed(3000, t1)
	f.advance(3000, t1)
	f.evaluate(t1)
	if r := c.versions.Check(&tok, false, 0); r != RefuseVersion {
		t.Fatalf("fill from before the outage: %v, want version (flushed)", r)
	}
}

func TestReached(t *testing.T) {
	for _, tc := range []struct {
		applied, primary LSN
		want             bool
	}{
		{100, 100, true}, {101, 100, true}, {99, 100, false},
		{8192, 8192 + 24, true}, // the record ended at the page boundary
		{8192, 8192 + 40, true}, {8191, 8192 + 24, false}, {8192, 8192 + 41, false},
	} {
		if got := reached(tc.applied, tc.primary); got != tc.want {
			t.Errorf("reached(%d, %d) = %v, want %v", tc.applied, tc.primary, got, tc.want)
		}
	}
}
