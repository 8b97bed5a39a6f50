package pool

import (
	"context"
	"time"
)

// The pool's background upkeep: the janitor that closes idle connections
// past their timeouts and fills pools up to min_pool_size, and Close.

// Close closes every idle connection and stops the janitor. Connections in
// use are closed when they are released.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	for _, p := range m.pools {
		m.closeIdleLocked(p)
	}
	m.mu.Unlock()
	close(m.stop)
	<-m.done
}

// janitor closes idle connections past server_idle_timeout or server_lifetime.
func (m *Manager) janitor() {
	defer close(m.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.mu.Lock()
			idleTimeout := m.cfg.ServerIdleTimeout
			var expired []*Conn
			for _, p := range m.pools {
				keep := p.idle[:0]
				for _, c := range p.idle {
					if (idleTimeout > 0 && now.Sub(c.lastUsed) > idleTimeout) || (!c.expires.IsZero() && now.After(c.expires)) {
						expired = append(expired, c)
						continue
					}
					keep = append(keep, c)
				}
				p.idle = keep
			}
			for _, c := range expired {
				m.closeLocked(c)
			}
			m.fillMinLocked()
			m.mu.Unlock()
		}
	}
}

// fillMinLocked opens connections in the background for pools below
// min_pool_size, within their size and the global cap.
func (m *Manager) fillMinLocked() {
	cfg := m.cfg
	if cfg.MinPoolSize <= 0 || m.closed {
		return
	}
	for _, p := range m.pools {
		for p.open < cfg.MinPoolSize && p.open < p.size && m.total < cfg.MaxServerConnections && len(m.waiters) == 0 {
			p.open++
			m.total++
			go func(p *pool) {
				ctx, cancel := context.WithTimeout(context.Background(), cfg.ServerConnectTimeout)
				defer cancel()
				c, err := dial(ctx, &cfg, p.target)
				if err != nil {
					m.mu.Lock()
					m.freeSlotLocked(p)
					m.mu.Unlock()
					m.log.Warn("min_pool_size: server connection failed", "db", p.key.Database, "err", err)
					return
				}
				c.pool = p
				m.Release(c)
			}(p)
		}
	}
}
