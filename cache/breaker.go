package cache

import (
	"sync"
	"time"
)

// BreakerState is where a Breaker stands.
type BreakerState uint8

const (
	// BreakerClosed: calls go to Redis.
	BreakerClosed BreakerState = iota
	// BreakerOpen: calls fail at once, without asking Redis, until the
	// cooldown has passed.
	BreakerOpen
	// BreakerHalfOpen: the cooldown passed; one probe call is let through,
	// whose outcome closes or reopens the breaker.
	BreakerHalfOpen
)

func (s BreakerState) String() string {
	return [...]string{"closed", "open", "half_open", "unknown"}[min(s, BreakerHalfOpen+1)]
}

// Breaker is a circuit breaker for Redis calls: after threshold
// consecutive failures it opens, so a Redis that is down or slow costs the
// request path nothing (no timeout waited per request); after cooldown one
// probe is let through. Safe for concurrent use. The clock is injected for
// tests.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	state    BreakerState
	failures int // consecutive, while closed
	openedAt time.Time
	probing  bool // half open: the probe is out
}

// NewBreaker returns a closed breaker opening after threshold (at least
// 1) consecutive failures for cooldown; now nil means time.Now.
func NewBreaker(threshold int, cooldown time.Duration, now func() time.Time) *Breaker {
	if now == nil {
		now = time.Now
	}
	return &Breaker{threshold: max(threshold, 1), cooldown: cooldown, now: now}
}

// Allow says whether a call may go to Redis now. A true answer must be
// followed by exactly one Success or Failure: in half open state it is
// the probe, and no other call is allowed until it reports.
func (b *Breaker) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		return true
	case BreakerOpen:
		if b.now().Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.state, b.probing = BreakerHalfOpen, true
		return true
	default:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	}
}

// Success reports an allowed call that worked: the breaker closes.
func (b *Breaker) Success() {
	b.mu.Lock()
	b.state, b.failures, b.probing = BreakerClosed, 0, false
	b.mu.Unlock()
}

// Failure reports an allowed call that failed (error or timeout). It
// returns true when this failure opened the breaker.
func (b *Breaker) Failure() (opened bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerClosed:
		if b.failures++; b.failures < b.threshold {
			return false
		}
	case BreakerOpen:
		return false // a call allowed before it opened
	}
	b.state, b.openedAt, b.failures, b.probing = BreakerOpen, b.now(), 0, false
	return true
}

// State is the breaker's state now (an open breaker whose cooldown has
// passed still says open until a call is allowed).
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
