package pool

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/pgerr"
)

// Key identifies a pool: the client-visible database, the client's user
// and, for the pools of a read/write split, the replica.
type Key struct {
	Database string
	User     string
	// Replica is "" for the primary's pool and the replica's host:port for
	// a replica's pool.
	Replica string
}

// Role is "primary" or "replica", for the console and metric labels.
func (k Key) Role() string {
	if k.Replica == "" {
		return "primary"
	}
	return "replica"
}

// Manager owns every pool and the global cap on server connections.
type Manager struct {
	log *slog.Logger

	mu      sync.Mutex
	cfg     Config
	pools   map[Key]*pool
	total   int       // server connections open or being dialed, all pools
	waiters []*waiter // FIFO across pools
	closed  bool
	pause   pauseState // PAUSE and RESUME (pause.go)
	metrics *metrics   // nil until RegisterMetrics (metrics.go)
	// sizeOf gives a new pool its size; nil means cfg.PoolSize (SetSizer).
	sizeOf func(Key) int

	stop chan struct{}
	done chan struct{}
}

type pool struct {
	key    Key
	target Target
	// size is the pool's own size: set when the pool is made and changed
	// only by SetSize, never by a client's Acquire.
	size int
	open int // connections open or being dialed
	idle []*Conn
	// counters are the pool's traffic counters (stats.go).
	counters *Counters
	login    atomic.Int32 // connections being dialed (of open)
	// canceling counts cancel requests in flight to the pool's connections
	// (Conn.StartCancel).
	canceling atomic.Int32
	killed    time.Time // KILL: connections created before are closed on release
	// moved is closed and replaced when MovePrimary changes target, so
	// that a dial retrying the old server tries the new one at once.
	moved chan struct{}
	// followsMonitor: MovePrimary set target (role auto); from then on
	// only MovePrimary changes it. An Acquire that names the old primary
	// (a session that looked it up just before the switch) gets a
	// connection to the one the monitor trusts, rather than pointing the
	// pool back at the old server.
	followsMonitor bool
}

// waiter is a client queued for a connection. It receives either a Conn
// handed over by Release, or nil meaning "a slot is reserved for you: dial".
type waiter struct {
	pool  *pool
	ch    chan *Conn
	since time.Time
}

// Stats is a point-in-time view of one pool.
type Stats struct {
	Key     Key
	Open    int
	Idle    int
	Waiting int
	// Canceling is the number of cancel requests in flight to the pool's
	// connections; a connection being canceled is not handed to another
	// client until its cancel is done (PgBouncer's sv_being_canceled).
	Canceling int
}

// NewManager starts a Manager and its janitor; Close stops both.
func NewManager(cfg Config, log *slog.Logger) *Manager {
	m := &Manager{
		log:   log,
		cfg:   cfg,
		pools: map[Key]*pool{},
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go m.janitor()
	return m
}

// SetConfig swaps in a reloaded configuration. It leaves the sizes of
// existing pools alone: their owner changes them with SetSize.
func (m *Manager) SetConfig(cfg Config) {
	m.mu.Lock()
	m.cfg = cfg
	m.mu.Unlock()
}

// Acquire returns a server connection of the pool key, made to target,
// within the pool's size (SetSize). It waits in FIFO order while the pool
// or the global cap is full, until ctx ends or the configured
// query_wait_timeout passes (then a 53300 error).
func (m *Manager) Acquire(ctx context.Context, key Key, target Target) (*Conn, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, pgerr.Fatal(pgerr.AdminShutdown, "pgone is shutting down")
	}
	cfg := m.cfg
	p := m.pools[key]
	if p == nil {
		p = &pool{key: key, target: target, size: m.sizeLocked(key), counters: m.newCounters(key, target), moved: make(chan struct{})}
		m.pools[key] = p
	}
	if p.followsMonitor {
		// Where the primary is, the monitor says (MovePrimary).
		target.Host, target.Port = p.target.Host, p.target.Port
	}
	if p.target != target {
		// The database or user moved in a reload: old idle connections go.
		p.target = target
		m.closeIdleLocked(p)
		if m.metrics != nil {
			p.counters.obs.Store(m.metrics.observers(key, target))
		}
	}
	paused, err := m.waitUnpausedLocked(ctx, p, cfg.QueryWaitTimeout)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	for {
		if c := m.takeIdleLocked(p); c != nil {
			m.mu.Unlock()
			return c, nil
		}
		if p.open < p.size && m.total >= cfg.MaxServerConnections {
			// The global cap is full: an idle connection of another pool
			// makes room, as a busy one would when it closes.
			m.evictIdleLocked(p)
		}
		if p.open < p.size && m.total < cfg.MaxServerConnections {
			p.open++
			m.total++
			m.mu.Unlock()
			return m.dial(ctx, &cfg, p)
		}
		break
	}
	w := &waiter{pool: p, ch: make(chan *Conn, 1), since: time.Now()}
	m.waiters = append(m.waiters, w)
	m.mu.Unlock()

	timer := time.NewTimer(cfg.QueryWaitTimeout - paused)
	defer timer.Stop()
	var reserve <-chan time.Time
	if cfg.ReservePoolSize > 0 {
		rt := time.NewTimer(cfg.ReservePoolTimeout)
		defer rt.Stop()
		reserve = rt.C
	}
	var why error
wait:
	select {
	case c := <-w.ch:
		if c != nil {
			return c, nil
		}
		return m.dial(ctx, &cfg, p)
	case <-reserve:
		// Waited long enough: open a reserve connection if there is room.
		m.mu.Lock()
		if p.open < p.size+cfg.ReservePoolSize && m.total < cfg.MaxServerConnections && m.removeWaiterLocked(w) {
			p.open++
			m.total++
			m.mu.Unlock()
			m.log.Info("using the reserve pool", "db", key.Database, "user", key.User, "open", p.open)
			return m.dial(ctx, &cfg, p)
		}
		m.mu.Unlock()
		reserve = nil
		goto wait
	case <-timer.C:
		why = pgerr.New(pgerr.TooManyConnections, "query_wait_timeout: no server connection available for database %q within %s", key.Database, cfg.QueryWaitTimeout)
	case <-ctx.Done():
		why = ctx.Err()
	}
	m.mu.Lock()
	if m.removeWaiterLocked(w) {
		m.mu.Unlock()
		return nil, why
	}
	m.mu.Unlock()
	// Handed something just as we gave up: take it and give it back.
	if c := <-w.ch; c != nil {
		m.Release(c)
	} else {
		m.mu.Lock()
		m.freeSlotLocked(p)
		m.mu.Unlock()
	}
	return nil, why
}

// TryAcquire returns an idle server connection of the pool key if one is
// ready now, without waiting or dialing; nil otherwise (the pool is
// paused, has no idle connection, or does not exist yet). It is Acquire's
// fast path: no context, no timers.
func (m *Manager) TryAcquire(key Key, target Target) *Conn {
	m.mu.Lock()
	p := m.pools[key]
	if m.closed || p == nil || p.target != target || m.pausedLocked(key.Database) {
		m.mu.Unlock()
		return nil
	}
	c := m.takeIdleLocked(p)
	m.mu.Unlock()
	return c
}

// takeIdleLocked pops p's idle connections until one is alive (closed ones
// are discarded) and returns it, or nil. m.mu is held on entry and return,
// released around each liveness check.
func (m *Manager) takeIdleLocked(p *pool) *Conn {
	for {
		c := m.popIdleLocked(p)
		if c == nil {
			return nil
		}
		m.mu.Unlock()
		alive := c.Alive()
		if !alive {
			m.log.Info("server connection found closed, replacing", "db", p.key.Database, "user", p.key.User, "pid", c.PID)
			m.Discard(c)
		}
		m.mu.Lock()
		if alive {
			return c
		}
	}
}

// dial makes a connection for a reserved slot of p. A server that cannot be
// reached or is starting up (a restart) is retried with backoff for up to
// query_wait_timeout, so clients wait through a restart instead of failing;
// an answer such as a failed login is final at once.
func (m *Manager) dial(ctx context.Context, cfg *Config, p *pool) (*Conn, error) {
	p.login.Add(1)
	defer p.login.Add(-1)
	if p.key.Replica != "" {
		rc := *cfg
		rc.ServerConnectTimeout = replicaDialTimeout(cfg)
		cfg = &rc
	}
	deadline := time.Now().Add(cfg.QueryWaitTimeout)
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		m.mu.Lock()
		target, moved := p.target, p.moved
		m.mu.Unlock()
		c, err := dial(ctx, cfg, target)
		if err == nil {
			c.pool = p
			if attempt > 1 {
				m.log.Info("server connection made after retries", "db", p.key.Database, "attempts", attempt)
			}
			return c, nil
		}
		if attempt == 1 {
			m.log.Warn("server connection failed", "db", p.key.Database, "user", p.key.User, "addr", target.addr(), "err", err)
		}
		// A replica that cannot be reached is not waited for: the proxy
		// sends its reads to the primary instead.
		if !retryable(err) || p.key.Replica != "" || time.Now().Add(backoff).After(deadline) {
			m.mu.Lock()
			m.freeSlotLocked(p)
			m.mu.Unlock()
			return nil, err
		}
		select {
		case <-ctx.Done():
			m.mu.Lock()
			m.freeSlotLocked(p)
			m.mu.Unlock()
			return nil, err
		case <-time.After(backoff):
		case <-moved:
			backoff = 25 * time.Millisecond // the primary moved: try it now
		}
		backoff = min(2*backoff, time.Second)
	}
}

// replicaDialTimeout bounds a dial of a replica server for a client's
// read: a replica that has not logged a connection in within two of its
// checks' timeouts (at least 2 s) is treated as unreachable, and the read
// goes to the primary (the proxy's fallback), instead of waiting up to
// server_connect_timeout on a replica whose socket accepts but whose
// postmaster does not answer (SIGSTOP, a hung host).
func replicaDialTimeout(cfg *Config) time.Duration {
	return min(cfg.ServerConnectTimeout, max(2*checkTimeout(cfg.ReplicaCheckInterval), 2*time.Second))
}

// MovePrimary points every primary pool of db at host:port, as a
// failover decided (the proxy's replica monitor): idle connections to the
// old server close now, busy ones when released (Release), and dials
// retrying the old server switch to the new one at once.
func (m *Manager) MovePrimary(db, host string, port int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.pools {
		if p.key.Database != db || p.key.Replica != "" || (p.target.Host == host && p.target.Port == port) {
			continue
		}
		p.target.Host, p.target.Port = host, port
		p.followsMonitor = true
		m.closeIdleLocked(p)
		if m.metrics != nil {
			p.counters.obs.Store(m.metrics.observers(p.key, p.target))
		}
		close(p.moved)
		p.moved = make(chan struct{})
	}
}

// retryable reports whether a connect error may go away by itself: the
// server is unreachable, is starting up or shutting down (57P03), or has
// too many connections (53300: clients wait for one to close, as they wait
// for a pool that is full).
func retryable(err error) bool {
	var pge *pgconn.PgError
	if errors.As(err, &pge) {
		return pge.Code == "57P03" || pge.Code == "53300"
	}
	return true
}

// Release returns a clean connection (ReadyForQuery status I, no session
// state) to its pool, or hands it straight to the first waiter of that pool.
func (m *Manager) Release(c *Conn) {
	if !c.cancelDone() {
		m.Discard(c) // a cancel may still land on the next client's query
		return
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	p := c.pool
	if m.closed || (!c.expires.IsZero() && now.After(c.expires)) || p.open > p.size || c.target != p.target || c.created.Before(p.killed) {
		m.closeLocked(c)
		return
	}
	c.lastUsed = now
	for i, w := range m.waiters {
		if w.pool == p {
			m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
			w.ch <- c
			return
		}
	}
	p.idle = append(p.idle, c)
}

// Discard closes a connection whose state is unknown or broken.
func (m *Manager) Discard(c *Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closeLocked(c)
}

func (m *Manager) closeLocked(c *Conn) {
	c.close()
	m.freeSlotLocked(c.pool)
}

// freeSlotLocked gives back one connection slot of p, and passes it to the
// first waiter that can use it: one of p itself, or of any pool under the
// global cap.
func (m *Manager) freeSlotLocked(p *pool) {
	p.open--
	m.total--
	if m.grantSlotsLocked() > 0 {
		return
	}
	// The global cap is full and a waiter's pool has room: free an idle
	// connection of another pool so the waiter can dial.
	if len(m.waiters) > 0 && m.total >= m.cfg.MaxServerConnections {
		for _, other := range m.pools {
			if other != m.waiters[0].pool && len(other.idle) > 0 {
				c := other.idle[0]
				other.idle = other.idle[1:]
				c.close()
				m.freeSlotLocked(other)
				return
			}
		}
	}
}

// grantSlotsLocked hands free slots, in FIFO order, to the waiters whose
// pool is below its size while the global cap has room; each dials. It
// returns how many it granted.
func (m *Manager) grantSlotsLocked() int {
	granted := 0
	for i := 0; i < len(m.waiters) && m.total < m.cfg.MaxServerConnections; {
		w := m.waiters[i]
		wp := w.pool
		if wp.open >= wp.size {
			i++
			continue
		}
		m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
		wp.open++
		m.total++
		w.ch <- nil
		granted++
	}
	return granted
}

// evictIdleLocked closes the longest-idle connection of a pool other than
// p, freeing its slot under the global cap for p (no waiter gets it).
func (m *Manager) evictIdleLocked(p *pool) {
	var victim *pool
	for _, other := range m.pools {
		if other != p && len(other.idle) > 0 && (victim == nil || other.idle[0].lastUsed.Before(victim.idle[0].lastUsed)) {
			victim = other
		}
	}
	if victim == nil {
		return
	}
	c := victim.idle[0]
	victim.idle = victim.idle[1:]
	c.close()
	victim.open--
	m.total--
}

func (m *Manager) popIdleLocked(p *pool) *Conn {
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	c := p.idle[n-1]
	p.idle = p.idle[:n-1]
	return c
}

func (m *Manager) removeWaiterLocked(w *waiter) bool {
	for i, x := range m.waiters {
		if x == w {
			m.waiters = append(m.waiters[:i], m.waiters[i+1:]...)
			return true
		}
	}
	return false
}

func (m *Manager) closeIdleLocked(p *pool) {
	idle := p.idle
	p.idle = nil
	for _, c := range idle {
		m.closeLocked(c)
	}
}

// Stats returns a snapshot of every pool.
func (m *Manager) Stats() []Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Stats, 0, len(m.pools))
	for _, p := range m.pools {
		s := Stats{Key: p.key, Open: p.open, Idle: len(p.idle), Canceling: int(p.canceling.Load())}
		for _, w := range m.waiters {
			if w.pool == p {
				s.Waiting++
			}
		}
		out = append(out, s)
	}
	return out
}

// Total is the number of server connections open or being dialed.
func (m *Manager) Total() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.total
}
