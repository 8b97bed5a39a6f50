package cache

import (
	"context"
	"fmt"
	"time"
)

// Cache is the result cache a proxy consults: Lookup before a request is
// sent, Fill.Store after its reply, Tx marks around writes. It owns the
// store (L1), the versions and the single flights. Safe for concurrent use
// by every session.
type Cache struct {
	cfg      Config
	store    Store
	versions *Versions
	flights  flights
	n        counters
	feeds    feeds // logical replication streams (logical.go)
	perDB    dbCounterSet
	l2       *l2 // nil without Redis (redis.go)
}

// New builds a cache from cfg, which must have had Defaults applied and
// Validate passed. It builds one whatever the mode: the caller decides
// whether to consult it.
func New(cfg Config) (*Cache, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("cache: %v", errs[0])
	}
	m, err := NewMemory(cfg.MaxBytes, cfg.MaxEntryBytes, cfg.DefaultTTL)
	if err != nil {
		return nil, err
	}
	c := &Cache{cfg: cfg, store: m, versions: NewVersions()}
	c.versions.onInvalidate = func(cause Cause, n int) { c.n.invalidations[cause].Add(int64(n)) }
	if cfg.Redis.On() {
		c.l2 = newL2(cfg.Redis, c)
		c.versions.onBump = c.l2.published
	}
	return c, nil
}

// Versions is the cache's version bookkeeping: sessions mark their writes
// on it (Tx.Mark), invalidation sources bump it.
func (c *Cache) Versions() *Versions { return c.versions }

// MaxEntryBytes is the largest reply Store takes: a proxy stops copying a
// reply (and Abandons its Fill) once it grows past this.
func (c *Cache) MaxEntryBytes() int { return int(c.cfg.MaxEntryBytes) }

// Get is Lookup's hit path: the reply stored under k if it is still
// valid, counted as a hit (a miss is counted by Lookup). It does not
// allocate; the reply is shared and must not be modified. An entry whose
// versions moved is deleted; one only shadowed by a writer in flight is
// kept, since the writer may roll back.
func (c *Cache) Get(k Key) ([]byte, bool) {
	e, ok := c.valid(k)
	if !ok {
		return nil, false
	}
	c.hit(e.Database, false)
	return e.Reply, true
}

// valid is k's L1 entry if its versions still hold; one whose versions
// moved is deleted.
func (c *Cache) valid(k Key) (*Entry, bool) {
	e, ok := c.store.Get(k)
	if !ok {
		return nil, false
	}
	switch c.versions.validity(e) {
	case RefuseNone:
		return e, true
	case RefuseVersion:
		c.store.Delete(k)
	}
	return nil, false
}

// hit and miss count a lookup in the totals and db's counts (SHOW CACHE);
// shared: a single-flight follower served the leader's entry.
func (c *Cache) hit(db string, shared bool) {
	d := c.perDB.of(db)
	c.n.hits.Add(1)
	d.hits.Add(1)
	if shared {
		c.n.shared.Add(1)
		d.shared.Add(1)
	}
}

func (c *Cache) miss(db string) {
	c.n.misses.Add(1)
	c.perDB.of(db).misses.Add(1)
}

// Lookup answers a cacheable read of tables in db under key k. reply
// non-nil is a hit (shared bytes: write them, do not modify them).
// Otherwise fill is non-nil: send the read to PostgreSQL, then call
// exactly one of fill.Store or fill.Abandon. If another request is already
// reading k, Lookup waits for its result up to single_flight_wait (or ctx)
// and returns that as a hit, or a fill to go to PostgreSQL itself.
func (c *Cache) Lookup(ctx context.Context, k Key, db string, tables []string) (reply []byte, fill *Fill) {
	if c.l2 != nil {
		return c.lookupShared(ctx, k, db, tables)
	}
	if r, ok := c.Get(k); ok {
		return r, nil
	}
	f, leader := c.flights.join(k, c.cfg.SingleFlightWait)
	if !leader {
		if e := c.flights.wait(ctx, f, c.cfg.SingleFlightWait); e != nil && c.versions.Valid(e) {
			c.hit(db, true)
			return e.Reply, nil
		}
		c.n.followersAlone.Add(1)
		f = nil
	}
	c.miss(db)
	// The token is taken now, after any wait: the read it covers is sent
	// after it.
	return nil, &Fill{c: c, key: k, token: c.versions.Token(db, tables), flight: f}
}

// Origin is where a fill's result was read.
type Origin struct {
	// Replica: it ran on a replica; ReplayLSN is a replay LSN of that
	// replica observed before the read was sent (the monitor's last
	// sample will do), so a lower bound of what the read saw. A sample
	// taken after the result arrived is not: the replica may have moved
	// on since the read's snapshot.
	Replica   bool
	ReplayLSN LSN
}

// Fill is one miss on its way to PostgreSQL. It is owned by the request
// that got it; Store or Abandon ends it (later calls do nothing).
type Fill struct {
	c      *Cache
	key    Key
	token  FillToken
	flight *flight // led by this fill, or nil
	done   bool
	// With Redis: shared says the fill goes to L2 too, under remote (what
	// Redis held before the read was sent); bypass that Redis was not
	// usable, so nothing is stored.
	shared, bypass bool
	remote         remoteToken
}

// Store offers reply (ownership passes to the cache: the caller must not
// reuse it) for the key, to live ttl (0: default_ttl). It returns why it
// was refused, or RefuseNone if stored. Followers waiting on this fill
// get the entry only if it was stored.
func (f *Fill) Store(reply []byte, ttl time.Duration, from Origin) Refusal {
	if f.done {
		return RefuseStore
	}
	e := newEntry(&f.token, reply, ttl)
	r := RefuseNone
	switch {
	case f.bypass:
		r = RefuseStore
	case e.Size() > int(f.c.cfg.MaxEntryBytes):
		r = RefuseTooLarge
	default:
		r = f.c.versions.Check(&f.token, from.Replica, from.ReplayLSN)
	}
	if r == RefuseNone && f.shared {
		r = f.storeShared(reply, ttl) // redis_lookup.go
	}
	if r == RefuseNone && !f.c.store.Set(f.key, e) {
		r = RefuseStore
	}
	if r != RefuseNone {
		f.c.n.refused[r].Add(1)
		f.c.perDB.of(f.token.db).refused[r].Add(1)
		e = nil
	} else {
		f.c.n.fills.Add(1)
		f.c.perDB.of(f.token.db).fills.Add(1)
	}
	f.end(e)
	return r
}

// Abandon ends a fill that has nothing to store: the read failed, was not
// cacheable after all, or its reply passed MaxEntryBytes.
func (f *Fill) Abandon() {
	if !f.done {
		f.end(nil)
	}
}

func (f *Fill) end(e *Entry) {
	f.done = true
	if f.flight != nil {
		f.c.flights.finish(f.key, f.flight, e)
	}
}

// Flush drops the entries of db ("" for all databases) and refuses every
// fill whose read began before: CACHE FLUSH, or a lost invalidation
// source.
func (c *Cache) Flush(db string) {
	if db == "" {
		if c.l2 != nil {
			c.l2.publish("", nil, bumpAll) // Redis first (see Versions.onBump)
		}
		c.versions.BumpAll(CauseFlush)
		c.store.Clear()
		return
	}
	// Entries of db become invalid by the epoch and are dropped when next
	// found or by eviction; the store has no per-database index.
	c.versions.BumpEpoch(db, 0, CauseFlush)
	c.perDB.of(db).flushes.Add(1)
}
