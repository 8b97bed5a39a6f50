package proxy

import (
	"errors"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// metrics are the proxy's Prometheus metrics. Errors are counted as they are
// sent (they are rare); everything else is read at scrape time.
type metrics struct {
	errors        *prometheus.CounterVec
	routes        *prometheus.CounterVec
	queryTimeouts *prometheus.CounterVec
}

// Error sources: pgone's own errors and PostgreSQL's, forwarded.
const (
	sourcePgone  = "pgone"
	sourceServer = "server"
)

// RegisterMetrics registers the proxy's metrics on reg. Call it once,
// before or after Serve.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	mt := &metrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgone_proxy_errors_total",
			Help: "ErrorResponses sent to clients, by SQLSTATE class (its first two characters) and source: pgone itself or the server.",
		}, []string{"database", "user", "class", "source"}),
		routes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgone_route_requests_total",
			Help: "Requests routed by the read/write split (transaction mode, databases with replicas), by route (primary or replica) and reason: the router's (read, write, locking_clause, volatile_function, transaction_control...) or the proxy's (no_usable_replica, read_your_writes, replica_unreachable, unknown_statement, function_call).",
		}, []string{"database", "route", "reason"}),
		queryTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pgone_proxy_query_timeouts_total",
			Help: "Requests cancelled on their server because they ran longer than query_timeout (each counts once, whether or not the server answered the cancel).",
		}, []string{"database", "user"}),
	}
	parse := func(name, help string, pick func(hits, misses uint64) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			return float64(pick(s.router.Stats()))
		})
	}
	unparsed := func(reason router.Reason) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "pgone_router_unparsed_total",
			Help:        "Statements routed to the primary without parsing, because their text is longer (too_long) or nests deeper (too_complex) than pgone lets PostgreSQL's parser run on in its own process.",
			ConstLabels: prometheus.Labels{"reason": reason.String()},
		}, func() float64 { return float64(s.router.Unparsed(reason)) })
	}
	readBuffers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgone_proxy_client_read_buffers",
		Help: "Client read buffers (4 KiB each) held now. Only a client with bytes to read holds one; an idle client over plain TCP holds none (over TLS it keeps its own).",
	}, func() float64 { return float64(s.readBuffers.Lent()) })
	for _, c := range []prometheus.Collector{mt.errors, mt.routes, mt.queryTimeouts, newProxyCollector(s), newFailoverCollector(s), readBuffers,
		parse("pgone_router_cache_hits_total", "Statements whose routing analysis came from the cache (by query text).",
			func(h, _ uint64) uint64 { return h }),
		parse("pgone_router_cache_misses_total", "Statements parsed with PostgreSQL's grammar because their text was not in the routing cache.",
			func(_, m uint64) uint64 { return m }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "pgone_router_cache_normalized_hits_total",
			Help: "Statements whose routing analysis came from the cache by normalised text (literals replaced) after missing by exact text; included in pgone_router_cache_hits_total."},
			func() float64 { h, _ := s.router.NormalizedStats(); return float64(h) }),
		unparsed(router.ReasonTooLong), unparsed(router.ReasonTooComplex),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	s.metrics.Store(mt)
	return nil
}

// countRoute counts one routed request of the session (split.go routes
// every transaction-mode request of a database with replicas).
func (ss *session) countRoute(r routeDecision) {
	mt := ss.srv.metrics.Load()
	if mt == nil {
		return
	}
	ss.plan.routes.counter(mt, ss.poolKey.Database, r.slot != nil, r.reason).Inc()
}

// routeCounters are the route counters a session used last: resolving a
// counter by its labels hashes them and takes the vector's lock, for every
// request. The session's database is the same for all of them.
type routeCounters struct {
	mt      *metrics // the metrics they belong to
	entries [4]routeCounter
	next    int // round robin
}

type routeCounter struct {
	replica bool
	reason  router.Reason
	c       prometheus.Counter
}

// counter returns the route counter of database, route and reason.
func (rc *routeCounters) counter(mt *metrics, database string, replica bool, reason router.Reason) prometheus.Counter {
	if rc.mt != mt {
		*rc = routeCounters{mt: mt}
	}
	for _, e := range rc.entries {
		if e.c != nil && e.replica == replica && e.reason == reason {
			return e.c
		}
	}
	route := "primary"
	if replica {
		route = "replica"
	}
	c := mt.routes.WithLabelValues(database, route, reason.String())
	rc.entries[rc.next] = routeCounter{replica: replica, reason: reason, c: c}
	rc.next = (rc.next + 1) % len(rc.entries)
	return c
}

// countServerError counts an ErrorResponse frame from the server.
func (ss *session) countServerError(frame []byte) {
	mt := ss.srv.metrics.Load()
	if mt == nil {
		return
	}
	ss.countErrorCode(mt, sqlstateOf(frame), sourceServer)
}

// countError counts an error pgone sends to the client: its own, or one
// from PostgreSQL it passes on.
func (ss *session) countError(err error) {
	mt := ss.srv.metrics.Load()
	if mt == nil || err == nil {
		return
	}
	source := sourcePgone
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		var pe *pgerr.Error
		if !errors.As(err, &pe) {
			source = sourceServer
		}
	}
	ss.countErrorCode(mt, []byte(pgerr.CodeOf(err)), source)
}

func (ss *session) countErrorCode(mt *metrics, code []byte, source string) {
	class := "XX" // an error without a valid SQLSTATE is an internal error
	if len(code) == 5 && sqlstateChar(code[0]) && sqlstateChar(code[1]) {
		class = string(code[:2])
	}
	var db, user string
	if l := ss.stats.labels.Load(); l != nil {
		db, user = l.database, l.user
	}
	mt.errors.WithLabelValues(db, user, class, source).Inc()
}

// countQueryTimeout counts a request cancelled for query_timeout.
func (ss *session) countQueryTimeout() {
	mt := ss.srv.metrics.Load()
	if mt == nil {
		return
	}
	var db, user string
	if l := ss.stats.labels.Load(); l != nil {
		db, user = l.database, l.user
	}
	mt.queryTimeouts.WithLabelValues(db, user).Inc()
}

func sqlstateChar(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' }

// proxyCollector reads clients and pins at scrape time.
type proxyCollector struct {
	s *Server

	clients, active, pins *prometheus.Desc
	// Replicas, by database and replica (host:port, from the config).
	replicaUsable, replicaLag, replicaLagBytes, replicaChanges, replicaInflight *prometheus.Desc
}

func newProxyCollector(s *Server) *proxyCollector {
	return &proxyCollector{
		s:       s,
		clients: prometheus.NewDesc("pgone_proxy_clients", "Client connections open, console included.", nil, nil),
		active: prometheus.NewDesc("pgone_pool_clients_active",
			"Clients of a pool that are not waiting for a server connection (PgBouncer's cl_active).", []string{"database", "user"}, nil),
		pins: prometheus.NewDesc("pgone_proxy_pins_total",
			"Clients pinned to their server connection in transaction mode, by cause.", []string{"cause"}, nil),
		replicaUsable: prometheus.NewDesc("pgone_replica_usable",
			"1 if the replica's last check found it reachable, in recovery and within max_replica_lag.", []string{"database", "replica", "state"}, nil),
		replicaLag: prometheus.NewDesc("pgone_replica_lag_seconds",
			"Age of the last transaction the replica applied, while it is behind the primary; 0 when caught up.", []string{"database", "replica"}, nil),
		replicaLagBytes: prometheus.NewDesc("pgone_replica_lag_bytes",
			"WAL bytes between the primary's position and the replica's replay position at the last check.", []string{"database", "replica"}, nil),
		replicaChanges: prometheus.NewDesc("pgone_replica_state_changes_total",
			"Changes of the replica's state (healthy, lagging, down, promoted) since start.", []string{"database", "replica"}, nil),
		replicaInflight: prometheus.NewDesc("pgone_replica_clients_active",
			"Clients holding a server connection of the replica (the load the split balances).", []string{"database", "replica"}, nil),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.clients
	ch <- c.active
	ch <- c.pins
	ch <- c.replicaUsable
	ch <- c.replicaLag
	ch <- c.replicaLagBytes
	ch <- c.replicaChanges
	ch <- c.replicaInflight
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.clients, prometheus.GaugeValue, float64(c.s.Clients()))
	for _, row := range c.s.poolRows() {
		if row.clActive == 0 && row.st.Active+row.st.Idle+row.st.Login+row.st.Waiting == 0 && row.st.Counters.Totals() == (pool.Totals{}) {
			continue // as the pool's own series: a pool that never served anything
		}
		if row.st.Key.Replica != "" {
			continue // clients belong to the (database, user) pool; see pgone_replica_clients_active
		}
		ch <- prometheus.MustNewConstMetric(c.active, prometheus.GaugeValue, float64(row.clActive), row.st.Key.Database, row.st.Key.User)
	}
	c.s.mu.Lock()
	pins := make(map[string]int64, len(c.s.pins))
	for k, v := range c.s.pins {
		pins[k] = v
	}
	c.s.mu.Unlock()
	for cause, n := range pins {
		ch <- prometheus.MustNewConstMetric(c.pins, prometheus.CounterValue, float64(n), cause)
	}
	for _, r := range c.s.replicaRows() {
		addr := net.JoinHostPort(r.Target.Host, strconv.Itoa(r.Target.Port))
		usable := 0.0
		if r.Usable() {
			usable = 1
		}
		ch <- prometheus.MustNewConstMetric(c.replicaUsable, prometheus.GaugeValue, usable, r.database, addr, r.State.String())
		ch <- prometheus.MustNewConstMetric(c.replicaLag, prometheus.GaugeValue, r.Lag.Seconds(), r.database, addr)
		ch <- prometheus.MustNewConstMetric(c.replicaLagBytes, prometheus.GaugeValue, float64(r.LagBytes), r.database, addr)
		ch <- prometheus.MustNewConstMetric(c.replicaChanges, prometheus.CounterValue, float64(r.Changes), r.database, addr)
	}
	if sets := c.s.splits.Load(); sets != nil {
		for name, set := range *sets {
			for _, slot := range set.slots {
				ch <- prometheus.MustNewConstMetric(c.replicaInflight, prometheus.GaugeValue, float64(slot.inflight.Load()), name, slot.addr)
			}
		}
	}
}
