package cache

import (
	"sort"
	"sync"
	"sync/atomic"
)

// Per-database counts for SHOW CACHE: the request path adds to them with
// atomics, after a read-locked map lookup that does not allocate.

// dbCounters are one database's cumulative counts.
type dbCounters struct {
	hits, misses, fills, shared atomic.Int64
	refused                     [numRefusals]atomic.Int64
	flushes                     atomic.Int64 // epoch bumps that were flushes
}

// dbCounterSet holds the counters by database.
type dbCounterSet struct {
	mu sync.RWMutex
	m  map[string]*dbCounters
}

func (s *dbCounterSet) of(db string) *dbCounters {
	s.mu.RLock()
	d := s.m[db]
	s.mu.RUnlock()
	if d != nil {
		return d
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*dbCounters{}
	}
	if d = s.m[db]; d == nil {
		d = &dbCounters{}
		s.m[db] = d
	}
	return d
}

// DatabaseStats is one database's share of Stats, for SHOW CACHE.
type DatabaseStats struct {
	Database string
	// Entries and Bytes are held by the in-process store (counted when
	// asked, by a walk of the store).
	Entries                     int
	Bytes                       int64
	Hits, Misses, Fills, Shared int64
	Refused                     map[Refusal]int64
	// Invalidations by cause: write counts table bumps (through pgone
	// and from the replication stream), epoch the database-wide bumps,
	// flush CACHE FLUSH and the releases after a stream outage.
	Invalidations map[Cause]int64
	// Feed is the database's replication stream, nil without one.
	Feed *FeedStatus
}

// HitRatio is Hits over lookups, 0 before any.
func (s DatabaseStats) HitRatio() float64 {
	return Stats{Hits: s.Hits, Misses: s.Misses}.HitRatio()
}

// DatabaseStats returns every database's counts, sorted by name: those
// looked up, invalidated or fed by a stream.
func (c *Cache) DatabaseStats() []DatabaseStats {
	byDB := map[string]*DatabaseStats{}
	get := func(db string) *DatabaseStats {
		s := byDB[db]
		if s == nil {
			s = &DatabaseStats{Database: db, Refused: map[Refusal]int64{}, Invalidations: map[Cause]int64{}}
			byDB[db] = s
		}
		return s
	}
	c.perDB.mu.RLock()
	for db, d := range c.perDB.m {
		s := get(db)
		s.Hits, s.Misses, s.Fills, s.Shared = d.hits.Load(), d.misses.Load(), d.fills.Load(), d.shared.Load()
		for r := RefuseNone + 1; r < numRefusals; r++ {
			s.Refused[r] = d.refused[r].Load()
		}
		s.Invalidations[CauseFlush] = d.flushes.Load()
	}
	c.perDB.mu.RUnlock()
	for db, inv := range c.versions.bumps() {
		s := get(db)
		s.Invalidations[CauseWrite] = inv.tables
		s.Invalidations[CauseEpoch] = max(0, inv.epoch-s.Invalidations[CauseFlush])
	}
	if w, ok := c.store.(interface {
		usageByDatabase() map[string]usage
	}); ok {
		for db, u := range w.usageByDatabase() {
			s := get(db)
			s.Entries, s.Bytes = u.entries, u.bytes
		}
	}
	for _, fs := range c.Feeds() {
		get(fs.Database).Feed = &fs
	}
	out := make([]DatabaseStats, 0, len(byDB))
	for _, s := range byDB {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Database < out[j].Database })
	return out
}

type dbBumps struct{ tables, epoch int64 }

// bumps sums each database's version bumps: the table versions, and the
// epoch.
func (v *Versions) bumps() map[string]dbBumps {
	v.mu.RLock()
	dbs := make(map[string]*dbVersions, len(v.dbs))
	for name, d := range v.dbs {
		dbs[name] = d
	}
	v.mu.RUnlock()
	out := make(map[string]dbBumps, len(dbs))
	for name, d := range dbs {
		d.mu.RLock()
		b := dbBumps{epoch: int64(d.epoch)}
		for _, t := range d.tables {
			b.tables += int64(t.version)
		}
		d.mu.RUnlock()
		out[name] = b
	}
	return out
}

type usage struct {
	entries int
	bytes   int64
}

// usageByDatabase walks the store: entries and bytes by database.
func (m *Memory) usageByDatabase() map[string]usage {
	out := map[string]usage{}
	for _, e := range m.c.All() {
		u := out[e.Database]
		u.entries++
		u.bytes += int64(e.Size())
		out[e.Database] = u
	}
	return out
}
