package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// Failover metrics, for databases whose servers have role auto (failover.go).
// A database with a configured primary has none of these series: its
// primary is not decided by pgone, so there is nothing to alert on.
//
//   - pgone_failover_primary_state{database,state}: 1 for the monitor's
//     current state, 0 for the others (an enum as a label, so an alert is
//     `...{state="split_brain"} == 1` and a panel can stack the states).
//   - pgone_failover_promotions_total{database}: the monitor's epoch, which
//     counts changes of the trusted primary; it restarts at 0 with the
//     monitor (a reload that changes its servers), which rate() handles.
//   - pgone_failover_writes_refused_total{database}: requests refused with
//     08004 because of a split brain; kept per Server, across reloads.

// primaryStates are the values of the state label, in a fixed order.
var primaryStates = []pool.PrimaryState{
	pool.PrimaryTrusted, pool.PrimaryPicked, pool.PrimarySplitBrain, pool.PrimaryNone, pool.PrimaryUnknown,
}

// failoverRefusals counts 08004 refusals by database. The zero value is
// ready; the set of databases is the configured ones, so it stays small.
type failoverRefusals struct{ byDB sync.Map } // database -> *atomic.Uint64

func (r *failoverRefusals) add(db string) {
	c, ok := r.byDB.Load(db)
	if !ok {
		c, _ = r.byDB.LoadOrStore(db, new(atomic.Uint64))
	}
	c.(*atomic.Uint64).Add(1)
}

func (r *failoverRefusals) get(db string) uint64 {
	if c, ok := r.byDB.Load(db); ok {
		return c.(*atomic.Uint64).Load()
	}
	return 0
}

// countRefusal counts err when it is a split-brain refusal (08004) of db.
func (s *Server) countRefusal(db string, err error) {
	if pgerr.CodeOf(err) == string(pgerr.ServerRejectedConnection) {
		s.refusals.add(db)
	}
}

// failoverCollector reads every auto monitor's view at scrape time.
type failoverCollector struct {
	s                           *Server
	state, promotions, refusals *prometheus.Desc
}

func newFailoverCollector(s *Server) *failoverCollector {
	return &failoverCollector{
		s: s,
		state: prometheus.NewDesc("pgone_failover_primary_state",
			"1 for the primary state of a database whose servers have role auto, 0 for the other states: ok, operator_pick (split brain, the operator picked one), split_brain (writes refused), no_primary (every server in recovery or down), unknown (no check yet).",
			[]string{"database", "state"}, nil),
		promotions: prometheus.NewDesc("pgone_failover_promotions_total",
			"Changes of the trusted primary of a role auto database (a promotion, or an operator's pick of another server); resets when the database's monitor restarts.",
			[]string{"database"}, nil),
		refusals: prometheus.NewDesc("pgone_failover_writes_refused_total",
			"Requests that needed the primary refused with 08004 because the role auto database was in a split brain.",
			[]string{"database"}, nil),
	}
}

func (c *failoverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.state
	ch <- c.promotions
	ch <- c.refusals
}

func (c *failoverCollector) Collect(ch chan<- prometheus.Metric) {
	sets := c.s.splits.Load()
	if sets == nil {
		return
	}
	for name, set := range *sets {
		if !set.auto {
			continue
		}
		v := set.mon.View()
		current, epoch := pool.PrimaryUnknown, uint64(0)
		if v != nil {
			current, epoch = v.Failover.State, v.Failover.Epoch
		}
		for _, st := range primaryStates {
			on := 0.0
			if st == current {
				on = 1
			}
			ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, on, name, st.String())
		}
		ch <- prometheus.MustNewConstMetric(c.promotions, prometheus.CounterValue, float64(epoch), name)
		ch <- prometheus.MustNewConstMetric(c.refusals, prometheus.CounterValue, float64(c.s.refusals.get(name)), name)
	}
}
