package cache

import "github.com/prometheus/client_golang/prometheus"

// feedCollector exports each logical replication stream's standing, read
// at scrape time; the label is the cache database (a bounded set: the
// configured databases).
type feedCollector struct {
	c                          *Cache
	lagBytes, lagSeconds, up   *prometheus.Desc
	bypassed, sinceLastMessage *prometheus.Desc
}

func newFeedCollector(c *Cache) *feedCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"database"}, nil)
	}
	return &feedCollector{c: c,
		lagBytes:         d("pgone_cache_replication_lag_bytes", "The primary's flush LSN minus the last position the invalidation stream applied."),
		lagSeconds:       d("pgone_cache_replication_lag_seconds", "Time since the invalidation stream was last known to have applied everything the primary had flushed (-1: never)."),
		up:               d("pgone_cache_replication_connected", "1 while the invalidation stream is streaming."),
		bypassed:         d("pgone_cache_replication_bypassed", "1 while the database is not cached: its invalidation stream is down or behind replication_max_lag."),
		sinceLastMessage: d("pgone_cache_replication_last_message_seconds", "Time since the invalidation stream's last message or keepalive (-1: none yet)."),
	}
}

func (k *feedCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{k.lagBytes, k.lagSeconds, k.up, k.bypassed, k.sinceLastMessage} {
		ch <- d
	}
}

func (k *feedCollector) Collect(ch chan<- prometheus.Metric) {
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	for _, s := range k.c.Feeds() {
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, s.Database)
		}
		g(k.lagBytes, float64(s.LagBytes))
		g(k.lagSeconds, s.LagSeconds)
		g(k.up, b(s.Connected))
		g(k.bypassed, b(s.Bypassed))
		g(k.sinceLastMessage, s.SinceMessage)
	}
}
