package tuner

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the tuner's: its decisions, and the top statements (only
// the top top_queries by total time, so the label sets stay bounded; the
// label is the fingerprint, never the text).
type metrics struct {
	decisions *prometheus.CounterVec
}

// RegisterMetrics registers the tuner's metrics on reg.
func (t *Tuner) RegisterMetrics(reg prometheus.Registerer) error {
	m := &metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pgone_tuner_decisions_total",
		Help: "Decisions of the tuner's loops (in dry-run too), by loop and action.",
	}, []string{"loop", "action"})}
	if err := reg.Register(m.decisions); err != nil {
		return err
	}
	if err := reg.Register(queryCollector{t}); err != nil {
		return err
	}
	t.mu.Lock()
	t.metrics = m
	t.mu.Unlock()
	return nil
}

var (
	descCalls = prometheus.NewDesc("pgone_tuner_query_calls_total",
		"Calls of a top statement (by total time), by fingerprint.", []string{"fingerprint", "database"}, nil)
	descErrors = prometheus.NewDesc("pgone_tuner_query_errors_total",
		"Failed calls of a top statement.", []string{"fingerprint", "database"}, nil)
	descTime = prometheus.NewDesc("pgone_tuner_query_time_seconds_total",
		"Server time of a top statement, all calls.", []string{"fingerprint", "database"}, nil)
	descWait = prometheus.NewDesc("pgone_tuner_query_wait_seconds_total",
		"Time a top statement's calls waited for a server.", []string{"fingerprint", "database"}, nil)
	descQuantile = prometheus.NewDesc("pgone_tuner_query_time_seconds",
		"Server time quantiles of a top statement, since pgone started.", []string{"fingerprint", "database", "quantile"}, nil)
)

// queryCollector exposes the top statements at scrape time.
type queryCollector struct{ t *Tuner }

func (c queryCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCalls, descErrors, descTime, descWait, descQuantile} {
		ch <- d
	}
}

func (c queryCollector) Collect(ch chan<- prometheus.Metric) {
	rows, _ := c.t.queries.rows("total", c.t.cfg.TopQueries)
	for _, r := range rows {
		fp := r.FingerprintHex()
		ch <- prometheus.MustNewConstMetric(descCalls, prometheus.CounterValue, float64(r.Calls), fp, r.Database)
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(r.Errors), fp, r.Database)
		ch <- prometheus.MustNewConstMetric(descTime, prometheus.CounterValue, r.Total.Seconds(), fp, r.Database)
		ch <- prometheus.MustNewConstMetric(descWait, prometheus.CounterValue, r.WaitTotal.Seconds(), fp, r.Database)
		for q, v := range map[string]float64{"0.5": r.P50.Seconds(), "0.95": r.P95.Seconds(), "0.99": r.P99.Seconds()} {
			ch <- prometheus.MustNewConstMetric(descQuantile, prometheus.GaugeValue, v, fp, r.Database, q)
		}
	}
}
