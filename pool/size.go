package pool

// Pool sizes: a pool gets its size when it is made (SetSizer) and keeps it
// until SetSize changes it (a reload, the tuner); clients never pass one.

// SetSizer sets how a pool gets its size when it is made: sizeOf(key),
// which must not call back into m (it runs under m's lock). Without a sizer
// a pool's size is the configured pool_size. Pools made earlier keep their
// size; SetSize changes it.
func (m *Manager) SetSizer(sizeOf func(Key) int) {
	m.mu.Lock()
	m.sizeOf = sizeOf
	m.mu.Unlock()
}

// SetSize changes the size of the pool key at once, so that a reload or a
// tuner can change it while clients run. Growing hands the new slots to
// queued clients, which dial. Shrinking closes idle connections beyond n
// now and busy ones when they are released (Release), until the pool holds
// at most n. n below 1 counts as 1. It reports whether the pool exists; a
// pool made later gets its size from the sizer.
func (m *Manager) SetSize(key Key, n int) bool {
	n = max(n, 1)
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pools[key]
	if p == nil {
		return false
	}
	p.size = n
	for p.open > p.size && len(p.idle) > 0 {
		c := p.idle[0] // the longest idle goes first
		p.idle = p.idle[1:]
		m.closeLocked(c)
	}
	m.grantSlotsLocked()
	return true
}

// sizeLocked is the size of a new pool key.
func (m *Manager) sizeLocked(key Key) int {
	if m.sizeOf != nil {
		return max(m.sizeOf(key), 1)
	}
	return max(m.cfg.PoolSize, 1)
}
