package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgone/pgone/pgerr"
)

// pauseState is PAUSE and RESUME of the admin console, guarded by Manager.mu.
// While a database is paused, Acquire for its pools waits (up to
// query_wait_timeout) before touching the pool; connections already handed
// out run on and come back as usual.
type pauseState struct {
	all bool            // every database is paused
	dbs map[string]bool // paused databases (client-visible names)
	// resume is closed and replaced by every Resume, waking held clients.
	resume chan struct{}
	// held are the clients waiting at the pause gate (for Status).
	held []*waiter
}

// pausePoll is how often Pause checks whether the servers are back.
const pausePoll = 10 * time.Millisecond

// Pause stops new server acquisitions for database db ("" means every
// database) and waits until every server connection of its pools is back in
// the pool, or until ctx ends; the pause stays in force either way until
// Resume. It fails if db (or everything) is already paused.
func (m *Manager) Pause(ctx context.Context, db string) error {
	m.mu.Lock()
	switch {
	case m.pause.all:
		m.mu.Unlock()
		return errors.New("pgone is already paused")
	case db == "" && len(m.pause.dbs) > 0:
		m.mu.Unlock()
		return errors.New("some databases are paused: resume them first")
	case db != "" && m.pause.dbs[db]:
		m.mu.Unlock()
		return fmt.Errorf("database %q is already paused", db)
	}
	if m.pause.resume == nil {
		m.pause.resume = make(chan struct{})
	}
	if db == "" {
		m.pause.all = true
	} else {
		if m.pause.dbs == nil {
			m.pause.dbs = map[string]bool{}
		}
		m.pause.dbs[db] = true
	}
	m.mu.Unlock()
	return m.waitQuiet(ctx, db)
}

// waitQuiet waits until no server of db's pools ("" means all) is held by a
// client or being dialed.
func (m *Manager) waitQuiet(ctx context.Context, db string) error {
	t := time.NewTicker(pausePoll)
	defer t.Stop()
	for {
		m.mu.Lock()
		busy := false
		for _, p := range m.pools {
			if (db == "" || p.key.Database == db) && p.open > len(p.idle) {
				busy = true
				break
			}
		}
		m.mu.Unlock()
		if !busy {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.stop:
			return errors.New("pool manager closed")
		case <-t.C:
		}
	}
}

// Resume ends the pause of db, or with db "" every pause.
func (m *Manager) Resume(db string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case db == "" && !m.pause.all && len(m.pause.dbs) == 0:
		return errors.New("pgone is not paused")
	case db != "" && !m.pause.dbs[db]:
		if m.pause.all {
			return errors.New("pgone is paused as a whole: RESUME without a database")
		}
		return fmt.Errorf("database %q is not paused", db)
	}
	if db == "" {
		m.pause.all = false
		clear(m.pause.dbs)
	} else {
		delete(m.pause.dbs, db)
	}
	close(m.pause.resume)
	m.pause.resume = make(chan struct{})
	return nil
}

// Paused reports whether db is paused (by its own PAUSE or a global one).
func (m *Manager) Paused(db string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pausedLocked(db)
}

func (m *Manager) pausedLocked(db string) bool {
	if !m.pause.all && len(m.pause.dbs) == 0 {
		return false
	}
	return m.pause.all || m.pause.dbs[db]
}

// waitUnpausedLocked holds an Acquire for p while p's database is paused,
// up to limit. It is called and returns with m.mu held, and reports how long
// it waited.
func (m *Manager) waitUnpausedLocked(ctx context.Context, p *pool, limit time.Duration) (time.Duration, error) {
	if !m.pausedLocked(p.key.Database) {
		return 0, nil
	}
	start := time.Now()
	w := &waiter{pool: p, since: start}
	m.pause.held = append(m.pause.held, w)
	defer func() {
		for i, x := range m.pause.held {
			if x == w {
				m.pause.held = append(m.pause.held[:i], m.pause.held[i+1:]...)
				break
			}
		}
	}()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for m.pausedLocked(p.key.Database) && !m.closed {
		resume := m.pause.resume
		m.mu.Unlock()
		var err error
		select {
		case <-resume:
		case <-m.stop:
		case <-timer.C:
			err = pgerr.New(pgerr.TooManyConnections, "query_wait_timeout: database %q is paused and was not resumed within %s", p.key.Database, limit)
		case <-ctx.Done():
			err = ctx.Err()
		}
		m.mu.Lock()
		if err != nil {
			return time.Since(start), err
		}
	}
	if m.closed {
		return time.Since(start), pgerr.Fatal(pgerr.AdminShutdown, "pgone is shutting down")
	}
	return time.Since(start), nil
}

// Kill pauses db, as PgBouncer's KILL does (new clients wait until Resume),
// closes the idle server connections of its pools now, and those in use
// when they are released. The sessions using them are ended by the proxy.
func (m *Manager) Kill(db string) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.pause.all && !m.pause.dbs[db] {
		if m.pause.resume == nil {
			m.pause.resume = make(chan struct{})
		}
		if m.pause.dbs == nil {
			m.pause.dbs = map[string]bool{}
		}
		m.pause.dbs[db] = true
	}
	for _, p := range m.pools {
		if p.key.Database == db {
			p.killed = now
			m.closeIdleLocked(p)
		}
	}
}
