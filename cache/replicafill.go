package cache

// Fills from replicas. A miss may run on a replica only if that replica
// had replayed, before the read was sent, the last invalidation of what
// the read reads (the token's bar); Fill.Store checks it again with the
// Origin. Invalidations whose LSN is unknown (commits through pgone) bar
// every replica until resolved by a primary LSN read after them, per
// database: LSNs of different primaries do not compare.

// ReplayBar is the replay LSN a replica needs for the pending miss's
// result to be stored (UnknownLSN: no replica will do); ok is false
// without a pending miss.
func (s *Session) ReplayBar() (lsn LSN, ok bool) {
	if s.fill == nil {
		return 0, false
	}
	return s.fill.token.minLSN, true
}

// ResolveUnknownLSNIn is ResolveUnknownLSN for db alone: primary must be
// db's primary's WAL position read after mark was taken.
func (v *Versions) ResolveUnknownLSNIn(db string, mark uint64, primary LSN) {
	d := v.db(db, false)
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lsn.resolve(mark, primary)
	for _, t := range d.tables {
		t.lsn.resolve(mark, primary)
	}
}
