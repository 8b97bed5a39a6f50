package cache

import (
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }
func wantState(t *testing.T, b *Breaker, s BreakerState) {
	t.Helper()
	if got := b.State(); got != s {
		t.Fatalf("state %s, want %s", got, s)
	}
}

// TestBreakerOpensAfterConsecutiveFailures: threshold-1 failures keep it
// closed, a success resets the count, the threshold-th consecutive one
// opens it, and an open breaker allows nothing before the cooldown.
func TestBreakerOpensAfterConsecutiveFailures(t *testing.T) {
	clk := newFakeClock()
	b := NewBreaker(3, time.Second, clk.now)
	for i := 0; i < 2; i++ {
		if !b.Allow() {
			t.Fatal("closed breaker refused a call")
		}
		if b.Failure() {
			t.Fatalf("failure %d opened it", i+1)
		}
	}
	b.Allow()
	b.Success()
	for i := 0; i < 2; i++ {
		b.Allow()
		b.Failure()
	}
	wantState(t, b, BreakerClosed) // the success reset the count
	b.Allow()
	if !b.Failure() {
		t.Fatal("third consecutive failure did not open it")
	}
	wantState(t, b, BreakerOpen)
	clk.add(999 * time.Millisecond)
	if b.Allow() {
		t.Fatal("open breaker allowed a call before its cooldown")
	}
}

// TestBreakerHalfOpenProbe: after the cooldown exactly one probe goes
// through; its failure reopens for a new cooldown, its success closes.
func TestBreakerHalfOpenProbe(t *testing.T) {
	clk := newFakeClock()
	b := NewBreaker(1, time.Second, clk.now)
	b.Allow()
	b.Failure()
	wantState(t, b, BreakerOpen)
	clk.add(time.Second)
	if !b.Allow() {
		t.Fatal("no probe after the cooldown")
	}
	wantState(t, b, BreakerHalfOpen)
	if b.Allow() {
		t.Fatal("a second call went through while the probe is out")
	}
	if !b.Failure() {
		t.Fatal("failed probe did not reopen it")
	}
	wantState(t, b, BreakerOpen)
	clk.add(500 * time.Millisecond)
	if b.Allow() {
		t.Fatal("reopened breaker allowed a call before a new cooldown")
	}
	clk.add(500 * time.Millisecond)
	if !b.Allow() {
		t.Fatal("no probe after the second cooldown")
	}
	b.Success()
	wantState(t, b, BreakerClosed)
	for i := 0; i < 3; i++ {
		if !b.Allow() {
			t.Fatal("closed breaker refused a call")
		}
		b.Success()
	}
}

// TestBreakerLateFailureWhileOpen: a call allowed before the breaker
// opened and failing after does not restart the cooldown.
func TestBreakerLateFailureWhileOpen(t *testing.T) {
	clk := newFakeClock()
	b := NewBreaker(1, time.Second, clk.now)
	b.Allow()
	b.Allow() // a second call in flight
	b.Failure()
	clk.add(900 * time.Millisecond)
	if b.Failure() {
		t.Fatal("a late failure reopened an open breaker")
	}
	clk.add(100 * time.Millisecond)
	if !b.Allow() {
		t.Fatal("the late failure pushed the cooldown back")
	}
}
