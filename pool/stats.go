package pool

import (
	"crypto/tls"
	"fmt"
	"net"
	"sort"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counterStripes is how many cache-line-padded copies of the counters a
// pool keeps. Sessions are spread over them round-robin, so the relays of
// many clients of one pool do not fight over one cache line; a read sums
// them. 16 covers the cores a proxy process usually gets.
const counterStripes = 16

// Counters are one pool's cumulative traffic counters, as PgBouncer's SHOW
// STATS reports them. The relay updates them through a Recorder with atomic
// adds and no locks; readers take Totals.
type Counters struct {
	stripes [counterStripes]stripe
	next    atomic.Uint32
	created time.Time
	// obs are the histograms of the pool's label set, nil until metrics are
	// registered.
	obs atomic.Pointer[observers]
}

type stripe struct {
	transactions    atomic.Int64
	queries         atomic.Int64
	received        atomic.Int64
	sent            atomic.Int64
	transactionTime atomic.Int64 // nanoseconds
	queryTime       atomic.Int64 // nanoseconds
	waitTime        atomic.Int64 // nanoseconds
	waits           atomic.Int64
	_               [64]byte // keep neighbours (and the adjacent-line prefetch) off this line
}

// observers are the histograms a pool's traffic is observed into.
type observers struct {
	query, transaction, wait prometheus.Observer
}

// Totals are the sums of a pool's counters since it was created.
type Totals struct {
	Transactions    int64
	Queries         int64
	Received        int64 // bytes received from clients
	Sent            int64 // bytes sent to clients
	TransactionTime time.Duration
	QueryTime       time.Duration
	WaitTime        time.Duration // time clients waited in Acquire
	Waits           int64         // Acquire calls that returned a connection
}

// Add returns the sum of t and o.
func (t Totals) Add(o Totals) Totals {
	return Totals{
		Transactions:    t.Transactions + o.Transactions,
		Queries:         t.Queries + o.Queries,
		Received:        t.Received + o.Received,
		Sent:            t.Sent + o.Sent,
		TransactionTime: t.TransactionTime + o.TransactionTime,
		QueryTime:       t.QueryTime + o.QueryTime,
		WaitTime:        t.WaitTime + o.WaitTime,
		Waits:           t.Waits + o.Waits,
	}
}

// Totals sums the stripes. Concurrent updates may or may not be included.
func (c *Counters) Totals() Totals {
	var t Totals
	if c == nil {
		return t
	}
	for i := range c.stripes {
		s := &c.stripes[i]
		t.Transactions += s.transactions.Load()
		t.Queries += s.queries.Load()
		t.Received += s.received.Load()
		t.Sent += s.sent.Load()
		t.TransactionTime += time.Duration(s.transactionTime.Load())
		t.QueryTime += time.Duration(s.queryTime.Load())
		t.WaitTime += time.Duration(s.waitTime.Load())
		t.Waits += s.waits.Load()
	}
	return t
}

// Created is when the pool, and so its counters, came to be.
func (c *Counters) Created() time.Time {
	if c == nil {
		return time.Time{}
	}
	return c.created
}

// Recorder returns a Recorder on the next stripe. A session takes one when
// it joins the pool and keeps it.
func (c *Counters) Recorder() Recorder {
	if c == nil {
		return Recorder{}
	}
	i := c.next.Add(1) % counterStripes
	return Recorder{c: c, s: &c.stripes[i]}
}

// Recorder adds one client's traffic to its pool's counters and histograms.
// The zero Recorder records nothing. Its methods are safe for concurrent use
// and do not allocate.
type Recorder struct {
	c *Counters
	s *stripe
}

// Of reports whether r records into c.
func (r Recorder) Of(c *Counters) bool { return r.c == c }

// AddQuery counts one query (a request answered by ReadyForQuery) that took d.
func (r Recorder) AddQuery(d time.Duration) {
	if r.s == nil {
		return
	}
	r.s.queries.Add(1)
	r.s.queryTime.Add(int64(d))
	if o := r.c.obs.Load(); o != nil {
		o.query.Observe(d.Seconds())
	}
}

// AddTransaction counts one transaction (from the first request after idle
// to ReadyForQuery with status I) that took d.
func (r Recorder) AddTransaction(d time.Duration) {
	if r.s == nil {
		return
	}
	r.s.transactions.Add(1)
	r.s.transactionTime.Add(int64(d))
	if o := r.c.obs.Load(); o != nil {
		o.transaction.Observe(d.Seconds())
	}
}

// AddWait counts one wait for a server connection that took d.
func (r Recorder) AddWait(d time.Duration) {
	if r.s == nil {
		return
	}
	r.s.waits.Add(1)
	r.s.waitTime.Add(int64(d))
	if o := r.c.obs.Load(); o != nil {
		o.wait.Observe(d.Seconds())
	}
}

// AddBytes counts bytes received from and sent to the client.
func (r Recorder) AddBytes(received, sent int64) {
	if r.s == nil {
		return
	}
	if received != 0 {
		r.s.received.Add(received)
	}
	if sent != 0 {
		r.s.sent.Add(sent)
	}
}

// Counters returns the counters of the pool c belongs to.
func (c *Conn) Counters() *Counters {
	if c.pool == nil {
		return nil
	}
	return c.pool.counters
}

// newCounters makes the counters of a new pool, wired to the histograms
// when metrics are registered. m.mu is held.
func (m *Manager) newCounters(key Key, target Target) *Counters {
	c := &Counters{created: time.Now()}
	if m.metrics != nil {
		c.obs.Store(m.metrics.observers(key, target))
	}
	return c
}

// Status is a point-in-time view of one pool, for the admin console and metrics.
type Status struct {
	Key Key
	// Host, Port, Database and User are where the pool's connections go.
	Host     string
	Port     int
	Database string
	User     string
	Size     int
	// Active servers are held by clients; Idle ones wait in the pool; Login
	// ones are being dialed and authenticated.
	Active, Idle, Login int
	// Waiting clients are queued for a server or held by PAUSE; MaxWait is
	// how long the oldest of them has waited.
	Waiting int
	MaxWait time.Duration
	Paused  bool
	// Counters are the pool's cumulative counters.
	Counters *Counters
}

// Status returns a snapshot of every pool, sorted by database, user and
// replica (the primary's pool first).
func (m *Manager) Status() []Status {
	now := time.Now()
	m.mu.Lock()
	out := make([]Status, 0, len(m.pools))
	index := make(map[*pool]int, len(m.pools))
	for _, p := range m.pools {
		login := int(p.login.Load())
		st := Status{
			Key:      p.key,
			Host:     p.target.Host,
			Port:     p.target.Port,
			Database: p.target.Database,
			User:     p.target.User,
			Size:     p.size,
			Idle:     len(p.idle),
			Login:    login,
			Active:   max(p.open-len(p.idle)-login, 0),
			Paused:   m.pausedLocked(p.key.Database),
			Counters: p.counters,
		}
		index[p] = len(out)
		out = append(out, st)
	}
	wait := func(w *waiter) {
		i, ok := index[w.pool]
		if !ok {
			return
		}
		out[i].Waiting++
		if !w.since.IsZero() {
			out[i].MaxWait = max(out[i].MaxWait, now.Sub(w.since))
		}
	}
	for _, w := range m.waiters {
		wait(w)
	}
	for _, w := range m.pause.held {
		wait(w)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Key, out[j].Key
		if a.Database != b.Database {
			return a.Database < b.Database
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return a.Replica < b.Replica // the primary's pool first
	})
	return out
}

// ConnInfo describes one server connection for SHOW SERVERS.
type ConnInfo struct {
	// ID identifies the connection while it lives (PgBouncer's ptr column).
	ID        string
	Key       Key
	Host      string
	Port      int
	User      string
	PID       uint32
	Created   time.Time
	LocalAddr net.Addr
	TLS       bool
	// LastUsed is when the connection was last released (idle ones only).
	LastUsed time.Time
	// Prepared is the number of prepared statements it carries (idle ones only).
	Prepared int
}

// Info describes c from its immutable fields, so any goroutine may call it
// while another owns c.
func (c *Conn) Info() ConnInfo {
	ci := ConnInfo{
		ID:        fmt.Sprintf("%p", c),
		Host:      c.target.Host,
		Port:      c.target.Port,
		User:      c.target.User,
		PID:       c.PID,
		Created:   c.created,
		LocalAddr: c.net.LocalAddr(),
	}
	_, ci.TLS = c.net.(*tls.Conn)
	if c.pool != nil {
		ci.Key = c.pool.key
	}
	return ci
}

// IdleConns describes every idle server connection.
func (m *Manager) IdleConns() []ConnInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []ConnInfo
	for _, p := range m.pools {
		for _, c := range p.idle {
			ci := c.Info()
			ci.LastUsed = c.lastUsed
			ci.Prepared = c.State.PreparedCount()
			out = append(out, ci)
		}
	}
	return out
}
