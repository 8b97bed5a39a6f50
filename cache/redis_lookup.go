package cache

import (
	"context"
	"log/slog"
	"time"
)

// Start connects the cache to Redis when one is configured: the bus loop
// subscribes and resyncs in the background, and until it is in sync every
// lookup bypasses the cache. The cache owns the loop; Close stops it.
// Without Redis it does nothing.
func (c *Cache) Start(log *slog.Logger) {
	l := c.l2
	if l == nil || l.stop != nil {
		return
	}
	if log != nil {
		l.log = log
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.stop, l.done = cancel, make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		l.renewLoop(ctx)
	}()
	go func() {
		defer close(l.done)
		l.run(ctx)
		<-renewed
	}()
}

// Close stops the bus loop and closes the Redis connections. The cache
// keeps answering, bypassed.
func (c *Cache) Close() {
	l := c.l2
	if l == nil || l.stop == nil {
		return
	}
	l.stop()
	l.bus.kick()
	<-l.done
	l.lost(nil)
	l.leave()
	_ = l.rdb.Close()
}

// lookupShared is Lookup with Redis. Without a usable bus it bypasses:
// the read goes to PostgreSQL and nothing is stored. Otherwise an L1 hit
// is served once the fence says the bus caught up with Redis; an L1 miss
// asks Redis in one call for the entry and for the versions it must
// match; a valid L2 entry is served and promoted to L1; a miss's fill
// keeps both tokens (local, taken first; remote, read after).
func (c *Cache) lookupShared(ctx context.Context, k Key, db string, tables []string) ([]byte, *Fill) {
	l := c.l2
	if !l.usable() {
		l.n.bypassed.Add(1)
		c.miss(db)
		return nil, &Fill{c: c, key: k, bypass: true}
	}
	if e, ok := c.valid(k); ok && l.fence(ctx) && c.versions.Valid(e) {
		c.hit(db, false)
		return e.Reply, nil
	}
	f, leader := c.flights.join(k, c.cfg.SingleFlightWait)
	if !leader {
		// The leader's entry passed Redis's check before its flight ended,
		// but maybe before this request began (a leader's L2 hit is checked
		// when it reads it): fence it as an L1 hit.
		if e := c.flights.wait(ctx, f, c.cfg.SingleFlightWait); e != nil && c.versions.Valid(e) && l.fence(ctx) && c.versions.Valid(e) {
			c.hit(db, true)
			return e.Reply, nil
		}
		c.n.followersAlone.Add(1)
		f = nil
	}
	// The local token first: a bump applied after it invalidates what is
	// promoted or filled under it.
	tok := c.versions.Token(db, tables)
	re, pttl, rt, err := l.lookup(ctx, k, db, tok.tables)
	if err != nil {
		l.n.bypassed.Add(1)
		c.miss(db)
		return nil, &Fill{c: c, key: k, bypass: true, flight: f}
	}
	if _, gen := l.bus.position(); re != nil && rt.gen == gen && re.validFor(db, tok.tables, &rt) {
		l.n.hits.Add(1)
		c.hit(db, false)
		var e *Entry
		if c.versions.Check(&tok, false, 0) == RefuseNone {
			e = newEntry(&tok, re.reply, max(pttl, time.Millisecond))
			if !c.store.Set(k, e) {
				e = nil
			}
		}
		if f != nil {
			c.flights.finish(k, f, e)
		}
		return re.reply, nil
	}
	l.n.misses.Add(1)
	c.miss(db)
	return nil, &Fill{c: c, key: k, token: tok, flight: f, shared: true, remote: rt}
}

// storeShared stores a fill in L2 if Redis still holds what it held
// before the read was sent; only then may it go to L1 too.
func (f *Fill) storeShared(reply []byte, ttl time.Duration) Refusal {
	l := f.c.l2
	if _, gen := l.bus.position(); !l.usable() || f.remote.gen != gen {
		l.n.bypassed.Add(1)
		return RefuseStore
	}
	if ttl <= 0 {
		ttl = f.c.cfg.DefaultTTL
	}
	stored, err := l.storeIf(context.Background(), f.key, f.token.db, f.token.tables, &f.remote, ttl, reply)
	switch {
	case err != nil:
		return RefuseStore
	case !stored:
		l.n.refused.Add(1)
		return RefuseVersion
	}
	l.n.fills.Add(1)
	return RefuseNone
}
