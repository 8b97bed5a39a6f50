package cache

import "fmt"

// LSN is a PostgreSQL WAL position (pg_lsn), as pglogrepl.LSN.
type LSN uint64

// UnknownLSN is what an invalidation records when its commit LSN is not
// known (the server died during COMMIT, a client left mid-transaction):
// no replica is then trusted to fill what it touched until
// Versions.ResolveUnknownLSN gives a primary LSN read after it.
const UnknownLSN = ^LSN(0)

func (l LSN) String() string { return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l)) }

// invalidLSN is where a table's (or a database epoch's) invalidations
// reached in the WAL: the highest known commit LSN (bumps may arrive out
// of commit order, so never lowered), and whether one with an unknown LSN
// is unresolved. Guarded by its database's mu.
type invalidLSN struct {
	known   LSN
	unknown uint64 // generation of the latest unresolved unknown one, 0 if none
}

// record notes an invalidation at lsn.
func (l *invalidLSN) record(v *Versions, lsn LSN) {
	if lsn == UnknownLSN {
		l.unknown = v.unknownGen.Add(1)
		return
	}
	l.known = max(l.known, lsn)
}

// bar is the replay LSN a replica needs before its reads of this are
// trusted.
func (l *invalidLSN) bar() LSN {
	if l.unknown != 0 {
		return UnknownLSN
	}
	return l.known
}

func (l *invalidLSN) resolve(mark uint64, primary LSN) {
	if l.unknown != 0 && l.unknown <= mark {
		l.known = max(l.known, primary)
		l.unknown = 0
	}
}

// UnknownMark is taken before reading the primary's WAL LSN for
// ResolveUnknownLSN.
func (v *Versions) UnknownMark() uint64 { return v.unknownGen.Load() }

// ResolveUnknownLSN gives the invalidations with an unknown LSN recorded
// before mark the LSN primary, which must have been read from the primary
// (pg_current_wal_lsn) after mark was taken: their commits happened before
// their bumps, so before mark, so at or before primary. The replica
// monitor can call it on each check of the primary:
//
//	mark := v.UnknownMark()
//	lsn := <pg_current_wal_lsn() on the primary>
//	v.ResolveUnknownLSN(mark, lsn)
func (v *Versions) ResolveUnknownLSN(mark uint64, primary LSN) {
	if mark <= v.resolved.Load() {
		return // nothing unknown since the last resolve (or ever)
	}
	v.mu.RLock()
	dbs := make([]*dbVersions, 0, len(v.dbs))
	for _, d := range v.dbs {
		dbs = append(dbs, d)
	}
	v.mu.RUnlock()
	for _, d := range dbs {
		d.mu.Lock()
		d.lsn.resolve(mark, primary)
		for _, t := range d.tables {
			t.lsn.resolve(mark, primary)
		}
		d.mu.Unlock()
	}
	for r := v.resolved.Load(); r < mark && !v.resolved.CompareAndSwap(r, mark); r = v.resolved.Load() {
	}
}
