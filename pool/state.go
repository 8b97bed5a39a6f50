package pool

// SessionState is what a server connection carries from the clients that
// used it in transaction mode, so the next client can tell what to redo.
// Its owner is the session holding the connection.
type SessionState struct {
	// Settings is the key of the session settings last applied; "" means
	// the server defaults (a fresh or reset connection).
	Settings string
	// UnnamedOwner identifies the client session whose unnamed statement
	// the server holds (0: unknown or nobody's). The proxy re-creates a
	// client's unnamed statement on a server it does not own.
	UnnamedOwner uint64
	// prepared maps server-side statement names to a use counter, for LRU.
	prepared map[string]uint64
	tick     uint64
}

// HasPrepared reports whether name is prepared on the connection, and marks it used.
func (s *SessionState) HasPrepared(name string) bool {
	if _, ok := s.prepared[name]; !ok {
		return false
	}
	s.tick++
	s.prepared[name] = s.tick
	return true
}

// AddPrepared records name as prepared. When more than limit are recorded
// it returns the least recently used one, which the caller closes.
func (s *SessionState) AddPrepared(name string, limit int) (evict string) {
	if s.prepared == nil {
		s.prepared = map[string]uint64{}
	}
	s.tick++
	s.prepared[name] = s.tick
	if limit <= 0 || len(s.prepared) <= limit {
		return ""
	}
	var oldest uint64 = ^uint64(0)
	for n, t := range s.prepared {
		if t < oldest && n != name {
			oldest, evict = t, n
		}
	}
	delete(s.prepared, evict)
	return evict
}

// ForgetPrepared removes name from the record.
func (s *SessionState) ForgetPrepared(name string) { delete(s.prepared, name) }

// ForgetAllPrepared empties the record (after DISCARD ALL or DEALLOCATE ALL).
func (s *SessionState) ForgetAllPrepared() { clear(s.prepared) }

// PreparedCount is the number of statements recorded.
func (s *SessionState) PreparedCount() int { return len(s.prepared) }
