package cache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// flights makes concurrent misses of one key send one query: the first
// miss leads, the others follow and wait for its entry up to a bound, then
// go to PostgreSQL themselves. Safe for concurrent use.
type flights struct {
	mu sync.Mutex
	m  map[Key]*flight

	waiting atomic.Int64 // followers in wait now (tests wait on it)
}

// flight is one leader's query. e is written once, before done is closed.
type flight struct {
	done    chan struct{}
	started time.Time
	e       *Entry // the stored entry, nil if the leader stored nothing
}

// join returns k's flight and whether the caller leads it. A leader must
// call finish exactly once. A flight older than bound is taken over by a
// new leader, so a leader that never finishes (a lost request) costs its
// key one bound of waiting, not every later miss.
func (g *flights) join(k Key, bound time.Duration) (f *flight, leader bool) {
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if f = g.m[k]; f != nil && now.Sub(f.started) < bound {
		return f, false
	}
	if g.m == nil {
		g.m = map[Key]*flight{}
	}
	f = &flight{done: make(chan struct{}), started: now}
	g.m[k] = f
	return f, true
}

// finish ends the leader's flight with e (nil: nothing stored) and wakes
// its followers; a later miss of k leads a new flight.
func (g *flights) finish(k Key, f *flight, e *Entry) {
	g.mu.Lock()
	if g.m[k] == f {
		delete(g.m, k)
	}
	g.mu.Unlock()
	f.e = e
	close(f.done)
}

// wait returns the leader's entry, or nil when the leader stored nothing,
// bound passed first, or ctx ended: the follower then goes itself.
func (g *flights) wait(ctx context.Context, f *flight, bound time.Duration) *Entry {
	select {
	case <-f.done:
		return f.e
	default:
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	t := time.NewTimer(bound)
	defer t.Stop()
	select {
	case <-f.done:
		return f.e
	case <-t.C:
	case <-ctx.Done():
	}
	return nil
}

// inFlight is the number of keys being led, for tests and stats.
func (g *flights) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
