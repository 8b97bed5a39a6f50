package pool

import (
	"github.com/prometheus/client_golang/prometheus"
)

// durationBuckets (seconds) span a fast point query to a slow report.
var durationBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// metrics are the pool's Prometheus metrics. Gauges and counters are read
// from the pools at scrape time (collector); only the histograms are
// observed on the request path.
type metrics struct {
	query, transaction, wait *prometheus.HistogramVec
}

func (mt *metrics) observers(k Key, t Target) *observers {
	l := poolLabelValues(k, t)
	return &observers{
		query:       mt.query.WithLabelValues(l...),
		transaction: mt.transaction.WithLabelValues(l...),
		wait:        mt.wait.WithLabelValues(l...),
	}
}

// poolLabels name a pool: the client's database and user, and the server
// its connections go to (role primary or replica, server host:port), so
// the pools of a read/write split are told apart.
var poolLabels = []string{"database", "user", "role", "server"}

func poolLabelValues(k Key, t Target) []string {
	return []string{k.Database, k.User, k.Role(), t.addr()}
}

// RegisterMetrics registers the pools' metrics on reg. Call it once, before
// or after pools exist.
func (m *Manager) RegisterMetrics(reg prometheus.Registerer) error {
	mt := &metrics{
		query: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgone_pool_query_duration_seconds",
			Help:    "Time from a client request to its ReadyForQuery.",
			Buckets: durationBuckets,
		}, poolLabels),
		transaction: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgone_pool_transaction_duration_seconds",
			Help:    "Time from the first request after idle to ReadyForQuery with status idle.",
			Buckets: durationBuckets,
		}, poolLabels),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pgone_pool_wait_duration_seconds",
			Help:    "Time a client waited for a server connection.",
			Buckets: durationBuckets,
		}, poolLabels),
	}
	for _, c := range []prometheus.Collector{mt.query, mt.transaction, mt.wait, newCollector(m)} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.metrics = mt
	for _, p := range m.pools {
		p.counters.obs.Store(mt.observers(p.key, p.target))
	}
	return nil
}

// collector reads the pools at scrape time.
type collector struct {
	m *Manager

	total, servers, waiting, longest, paused, size *prometheus.Desc
	transactions, queries, received, sent          *prometheus.Desc
}

func newCollector(m *Manager) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &collector{
		m:            m,
		total:        d("pgone_pool_server_connections", "Server connections open or being dialed, all pools."),
		servers:      d("pgone_pool_servers", "Server connections of a pool by state: active (held by a client), idle, login (being dialed).", append(poolLabels[:len(poolLabels):len(poolLabels)], "state")...),
		waiting:      d("pgone_pool_clients_waiting", "Clients waiting for a server connection of a pool (queued or held by PAUSE).", poolLabels...),
		longest:      d("pgone_pool_wait_longest_seconds", "How long the longest-waiting client of a pool has waited.", poolLabels...),
		paused:       d("pgone_pool_paused", "1 while the pool's database is paused by the admin console.", poolLabels...),
		size:         d("pgone_pool_size", "Server connections a pool may open now: its configured pool_size, or the size the tuner's pool_size loop set.", poolLabels...),
		transactions: d("pgone_pool_transactions_total", "Transactions completed through a pool.", poolLabels...),
		queries:      d("pgone_pool_queries_total", "Requests answered by ReadyForQuery through a pool.", poolLabels...),
		received:     d("pgone_pool_received_bytes_total", "Bytes received from the clients of a pool.", poolLabels...),
		sent:         d("pgone_pool_sent_bytes_total", "Bytes sent to the clients of a pool.", poolLabels...),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.servers, c.waiting, c.longest, c.paused, c.size, c.transactions, c.queries, c.received, c.sent} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(c.m.Total()))
	for _, st := range c.m.Status() {
		t := st.Counters.Totals()
		if st.Active+st.Idle+st.Login+st.Waiting == 0 && t == (Totals{}) {
			// A pool that never served anything (say, a database name
			// that does not exist, through the wildcard) would only add series.
			continue
		}
		l := poolLabelValues(st.Key, Target{Host: st.Host, Port: st.Port})
		gauge := func(d *prometheus.Desc, v float64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(l[:len(l):len(l)], extra...)...)
		}
		counter := func(d *prometheus.Desc, v int64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
		}
		gauge(c.servers, float64(st.Active), "active")
		gauge(c.servers, float64(st.Idle), "idle")
		gauge(c.servers, float64(st.Login), "login")
		gauge(c.waiting, float64(st.Waiting))
		gauge(c.longest, st.MaxWait.Seconds())
		paused := 0.0
		if st.Paused {
			paused = 1
		}
		gauge(c.paused, paused)
		gauge(c.size, float64(st.Size))
		counter(c.transactions, t.Transactions)
		counter(c.queries, t.Queries)
		counter(c.received, t.Received)
		counter(c.sent, t.Sent)
	}
}
