package cache

import "github.com/prometheus/client_golang/prometheus"

// l2Collector is the pgone_cache_l2_* metrics, read from the L2's
// counters at scrape time.
type l2Collector struct {
	c                                          *Cache
	hits, misses, fills, refused, errs, bypass *prometheus.Desc
	resyncs, losses, up, breaker               *prometheus.Desc
	lapsed, leaseWaits                         *prometheus.Desc
}

func newL2Collector(c *Cache) *l2Collector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &l2Collector{c: c,
		hits:    d("pgone_cache_l2_hits_total", "L1 misses answered from Redis (L2)."),
		misses:  d("pgone_cache_l2_misses_total", "L1 misses Redis did not answer."),
		fills:   d("pgone_cache_l2_fills_total", "Results stored in Redis."),
		refused: d("pgone_cache_l2_fills_refused_total", "Fills Redis refused because a table read moved since the read was sent."),
		errs:    d("pgone_cache_l2_errors_total", "Redis calls that failed or timed out (clients never see them)."),
		bypass:  d("pgone_cache_l2_bypassed_total", "Cacheable reads sent to PostgreSQL without the cache: Redis down, breaker open or bus not in sync."),
		resyncs: d("pgone_cache_l2_resyncs_total", "Attempts to subscribe to the invalidation bus and resync."),
		losses:  d("pgone_cache_l2_losses_total", "Times the invalidation bus was lost (L1 flushed, cache bypassed)."),
		up:      d("pgone_cache_l2_up", "1 while the invalidation bus is in sync and the cache serves, else 0."),
		breaker: d("pgone_cache_l2_breaker_state", "Redis circuit breaker: 0 closed, 1 open, 2 half open."),
		lapsed:  d("pgone_cache_l2_lease_lapsed_total", "Hits and lookups bypassed because a pgone instance's lease in Redis had lapsed (cut off or gone)."),
		leaseWaits: d("pgone_cache_l2_lease_waits_total",
			"Commits whose invalidation did not reach Redis, held until this instance's lease ended."),
	}
}

func (k *l2Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.hits, k.misses, k.fills, k.refused, k.errs, k.bypass, k.resyncs, k.losses, k.up, k.breaker, k.lapsed, k.leaseWaits} {
		ch <- d
	}
}

func (k *l2Collector) Collect(ch chan<- prometheus.Metric) {
	s, ok := k.c.L2Stats()
	if !ok {
		return
	}
	for d, v := range map[*prometheus.Desc]int64{k.hits: s.Hits, k.misses: s.Misses, k.fills: s.Fills, k.refused: s.Refused,
		k.errs: s.Errors, k.bypass: s.Bypassed, k.resyncs: s.Resyncs, k.losses: s.Losses,
		k.lapsed: s.Lapsed, k.leaseWaits: s.LeaseWaits} {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	up := 0.0
	if s.State == "up" {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(k.up, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(k.breaker, prometheus.GaugeValue, float64(s.Breaker))
}
