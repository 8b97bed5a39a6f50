package cache

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// counters are the cache's cumulative counts, added with atomics on the
// request path and read by Stats and the metrics collector.
type counters struct {
	hits, misses, fills    atomic.Int64
	shared, followersAlone atomic.Int64
	refused                [numRefusals]atomic.Int64
	invalidations          [numCauses]atomic.Int64
}

// Stats is a snapshot of the cache for SHOW CACHE.
type Stats struct {
	Entries int
	Bytes   int64
	Hits    int64 // answered from the cache, Shared included
	Misses  int64 // sent to PostgreSQL
	Fills   int64 // results stored
	// Shared are hits that waited for a concurrent miss of the same key;
	// FollowersAlone waited and then went to PostgreSQL themselves.
	Shared, FollowersAlone int64
	Refused                map[Refusal]int64 // fills refused, by reason
	Invalidations          map[Cause]int64   // tables (or databases) invalidated, by cause
}

// HitRatio is Hits over lookups, 0 before any.
func (s Stats) HitRatio() float64 {
	if s.Hits+s.Misses == 0 {
		return 0
	}
	return float64(s.Hits) / float64(s.Hits+s.Misses)
}

// Stats returns the current counts.
func (c *Cache) Stats() Stats {
	s := Stats{
		Entries: c.store.Len(), Bytes: c.store.Bytes(),
		Hits: c.n.hits.Load(), Misses: c.n.misses.Load(), Fills: c.n.fills.Load(),
		Shared: c.n.shared.Load(), FollowersAlone: c.n.followersAlone.Load(),
		Refused: map[Refusal]int64{}, Invalidations: map[Cause]int64{},
	}
	for r := RefuseNone + 1; r < numRefusals; r++ {
		s.Refused[r] = c.n.refused[r].Load()
	}
	for k := Cause(0); k < numCauses; k++ {
		s.Invalidations[k] = c.n.invalidations[k].Load()
	}
	return s
}

// RegisterMetrics registers the pgone_cache_* metrics on reg. They are
// read from the counters at scrape time, so the request path only adds.
func (c *Cache) RegisterMetrics(reg prometheus.Registerer) error {
	if c.l2 != nil {
		if err := reg.Register(newL2Collector(c)); err != nil { // redis_metrics.go
			return err
		}
	}
	if err := reg.Register(newCollector(c)); err != nil {
		return err
	}
	return reg.Register(newFeedCollector(c))
}

type collector struct {
	c                                         *Cache
	hits, misses, fills, refused, inval       *prometheus.Desc
	entries, bytes, sharedHits, followerAlone *prometheus.Desc
}

func newCollector(c *Cache) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{c: c,
		hits:          d("pgone_cache_hits_total", "Reads answered from the cache."),
		misses:        d("pgone_cache_misses_total", "Cacheable reads sent to PostgreSQL."),
		fills:         d("pgone_cache_fills_total", "Results stored in the cache."),
		refused:       d("pgone_cache_fills_refused_total", "Results not stored, by reason.", "reason"),
		inval:         d("pgone_cache_invalidations_total", "Tables (or whole databases) invalidated, by cause.", "cause"),
		entries:       d("pgone_cache_entries", "Entries in the in-process store."),
		bytes:         d("pgone_cache_bytes", "Bytes held by the in-process store."),
		sharedHits:    d("pgone_cache_single_flight_shared_total", "Hits that waited for a concurrent miss of the same key."),
		followerAlone: d("pgone_cache_single_flight_timeouts_total", "Misses that waited for a concurrent miss, then went to PostgreSQL themselves."),
	}
}

func (k *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.hits, k.misses, k.fills, k.refused, k.inval, k.entries, k.bytes, k.sharedHits, k.followerAlone} {
		ch <- d
	}
}

func (k *collector) Collect(ch chan<- prometheus.Metric) {
	s := k.c.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(k.hits, s.Hits)
	counter(k.misses, s.Misses)
	counter(k.fills, s.Fills)
	counter(k.sharedHits, s.Shared)
	counter(k.followerAlone, s.FollowersAlone)
	for r, v := range s.Refused {
		counter(k.refused, v, r.String())
	}
	for c, v := range s.Invalidations {
		counter(k.inval, v, c.String())
	}
	ch <- prometheus.MustNewConstMetric(k.entries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(k.bytes, prometheus.GaugeValue, float64(s.Bytes))
}
