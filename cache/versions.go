package cache

import (
	"slices"
	"sync"
	"sync/atomic"
)

// Versions is the "never stale" bookkeeping: per (database, table) a
// version bumped by each commit that wrote the table, per database an
// epoch bumped by writes no table can be blamed for, and the writers in
// flight on each. An entry is valid while the versions it recorded are
// current and nothing it read is in flight; a fill is stored only if the
// versions did not move between its token and its store and nothing was in
// flight at either end. All methods are safe for concurrent use.
//
// The rule that makes this exact: a writer is marked in flight (Tx.Mark)
// before its write is sent to PostgreSQL and stays so until its commit has
// bumped the versions (Tx.Commit), so a read that might have seen the
// write, or a cached result it made stale, is never stored nor served.
type Versions struct {
	mu  sync.RWMutex
	dbs map[string]*dbVersions
	// all is bumped by BumpAll: a flush of every database, including those
	// not seen yet.
	all atomic.Uint64
	// unknownGen numbers invalidations with an unknown LSN (lsn.go);
	// resolved is the highest mark ResolveUnknownLSN has finished.
	unknownGen, resolved atomic.Uint64

	// onInvalidate, if set, is told of each bump; it must not call back.
	onInvalidate func(c Cause, n int)
	// onBump, if set, is given every bump made here (Bump, BumpEpoch, a
	// Tx's Commit) before it is made locally: the L2 applies it in Redis
	// and publishes it to the other instances. Redis first, so that no
	// local token can include a bump Redis does not have yet (a promotion
	// from L2 under it would carry old bytes with new versions). It must
	// not call back. It returns hold, non-nil when the bump did not reach
	// Redis: a commit whose client is about to learn of it calls hold
	// before the reply goes out (lease.go); other bumps ignore it.
	onBump func(db string, tables []string, epoch bool) (hold func())
}

// dbVersions is one database's state; mu orders bumps against tokens and
// checks, so a commit's bump and its end of flight are one step.
type dbVersions struct {
	mu       sync.RWMutex
	epoch    uint64
	inflight int        // unattributable writers (MarkAll) in flight
	lsn      invalidLSN // of its epoch bumps
	tables   map[string]*tableVersion
}

type tableVersion struct {
	version  uint64
	inflight int
	lsn      invalidLSN
}

// TableVersion is a table read and the version it had.
type TableVersion struct {
	Table   string
	Version uint64
}

// Cause says why versions moved; it labels pgone_cache_invalidations_total.
type Cause uint8

const (
	// CauseWrite: a commit through pgone wrote the table.
	CauseWrite Cause = iota
	// CauseEpoch: a write no table can be blamed for (TRUNCATE, DDL,
	// GRANT, DO, CALL, volatile function) bumped the database's epoch.
	CauseEpoch
	// CauseFlush: CACHE FLUSH or a lost invalidation source.
	CauseFlush
	numCauses
)

func (c Cause) String() string {
	return [...]string{"write", "epoch", "flush", "unknown"}[min(c, numCauses)]
}

// NewVersions returns empty bookkeeping: every table at version 0.
func NewVersions() *Versions { return &Versions{dbs: map[string]*dbVersions{}} }

func (v *Versions) db(name string, create bool) *dbVersions {
	v.mu.RLock()
	d := v.dbs[name]
	v.mu.RUnlock()
	if d != nil || !create {
		return d
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if d = v.dbs[name]; d == nil {
		d = &dbVersions{tables: map[string]*tableVersion{}}
		// What was written before pgone first saw the database (before
		// it started, or directly on the primary) is not known: no
		// replica is trusted with it until a primary LSN read after now
		// resolves this (lsn.go).
		d.lsn.record(v, UnknownLSN)
		v.dbs[name] = d
	}
	return d
}

// table returns name's state, creating it; d.mu must be held for writing.
func (d *dbVersions) table(name string) *tableVersion {
	t := d.tables[name]
	if t == nil {
		t = &tableVersion{}
		d.tables[name] = t
	}
	return t
}

// FillToken is taken before a read is sent and checked when its result is
// stored (Versions.Check). It is owned by one request.
type FillToken struct {
	db     string
	all    uint64
	epoch  uint64
	tables []TableVersion
	busy   bool // something was in flight when it was taken
	minLSN LSN  // a replica's result is trusted from this replay LSN on
}

// Token records the current versions of tables in db (sorted and
// deduplicated into the token), the epoch and whether any is in flight.
func (v *Versions) Token(db string, tables []string) FillToken {
	tv := make([]TableVersion, 0, len(tables))
	for _, t := range tables {
		tv = append(tv, TableVersion{Table: t})
	}
	slices.SortFunc(tv, func(a, b TableVersion) int { return compareStrings(a.Table, b.Table) })
	tv = slices.CompactFunc(tv, func(a, b TableVersion) bool { return a.Table == b.Table })
	tok := FillToken{db: db, all: v.all.Load(), tables: tv}
	d := v.db(db, true) // a new database starts barred to replicas (db)
	d.mu.RLock()
	defer d.mu.RUnlock()
	tok.epoch, tok.busy, tok.minLSN = d.epoch, d.inflight > 0, d.lsn.bar()
	for i := range tok.tables {
		if t := d.tables[tok.tables[i].Table]; t != nil {
			tok.tables[i].Version = t.version
			tok.busy = tok.busy || t.inflight > 0
			tok.minLSN = max(tok.minLSN, t.lsn.bar())
		}
	}
	return tok
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Refusal says why a fill was not stored; it labels
// pgone_cache_fills_refused_total. RefuseNone means it may be stored.
type Refusal uint8

const (
	RefuseNone Refusal = iota
	// RefuseInFlight: a writer of a table read was in flight.
	RefuseInFlight
	// RefuseVersion: a table read or the epoch moved since the token.
	RefuseVersion
	// RefuseReplicaLSN: the replica had not replayed the last invalidation.
	RefuseReplicaLSN
	// RefuseTooLarge: the reply is over max_entry_bytes.
	RefuseTooLarge
	// RefuseStore: the store did not take it (the whole bound, or closed).
	RefuseStore
	numRefusals
)

func (r Refusal) String() string {
	return [...]string{"none", "in_flight", "version", "replica_lsn", "too_large", "store", "unknown"}[min(r, numRefusals)]
}

// Check says whether a result read under tok may be stored now. replica
// tells the result came from a replica that had replayed at least replay
// before the read was sent (Origin).
func (v *Versions) Check(tok *FillToken, replica bool, replay LSN) Refusal {
	if tok.busy {
		return RefuseInFlight
	}
	if r := v.check(tok.db, tok.tables, tok.all, tok.epoch); r != RefuseNone {
		return r
	}
	if replica && replay < tok.minLSN {
		return RefuseReplicaLSN
	}
	return RefuseNone
}

// Valid says whether e may be served: nothing it read moved and nothing is
// in flight. It does not allocate.
func (v *Versions) Valid(e *Entry) bool { return v.validity(e) == RefuseNone }

// validity is Valid's reason: RefuseVersion means e can never be valid
// again, RefuseInFlight that it may be once the writer ends.
func (v *Versions) validity(e *Entry) Refusal {
	return v.check(e.Database, e.Tables, e.all, e.Epoch)
}

func (v *Versions) check(db string, tables []TableVersion, all, epoch uint64) Refusal {
	if v.all.Load() != all {
		return RefuseVersion
	}
	d := v.db(db, false)
	if d == nil {
		return RefuseNone // nothing was ever bumped nor marked in db
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.inflight > 0 {
		return RefuseInFlight
	}
	if d.epoch != epoch {
		return RefuseVersion
	}
	for _, tv := range tables {
		t := d.tables[tv.Table]
		if t == nil {
			if tv.Version != 0 {
				return RefuseVersion
			}
			continue
		}
		if t.inflight > 0 {
			return RefuseInFlight
		}
		if t.version != tv.Version {
			return RefuseVersion
		}
	}
	return RefuseNone
}

// Bump records a commit that wrote tables of db at lsn (UnknownLSN if not
// known), for writes seen outside a Tx (logical replication).
func (v *Versions) Bump(db string, tables []string, lsn LSN) {
	v.bumped(db, tables, false)
	d := v.db(db, true)
	d.mu.Lock()
	for _, name := range tables {
		t := d.table(name)
		t.version++
		t.lsn.record(v, lsn)
	}
	d.mu.Unlock()
	v.told(CauseWrite, len(tables))
}

// BumpEpoch invalidates every entry of db: a write that no table can be
// blamed for committed at lsn, or cause is a flush. lsn 0 counts as
// unknown: a flush is asked for because something changed that pgone did
// not see (a direct write, a gap in the replication stream), at a position
// nobody knows, so replicas are barred until a primary LSN read after it.
func (v *Versions) BumpEpoch(db string, lsn LSN, cause Cause) { _ = v.bumpEpoch(db, lsn, cause) }

// bumpEpoch is BumpEpoch, returning the L2's hold (Versions.onBump).
func (v *Versions) bumpEpoch(db string, lsn LSN, cause Cause) (hold func()) {
	if lsn == 0 {
		lsn = UnknownLSN
	}
	hold = v.bumped(db, nil, true)
	d := v.db(db, true)
	d.mu.Lock()
	d.epoch++
	d.lsn.record(v, lsn)
	d.mu.Unlock()
	v.told(cause, 1)
	return hold
}

// BumpAll invalidates every entry of every database, and every fill
// whose token was taken before.
func (v *Versions) BumpAll(cause Cause) {
	v.all.Add(1)
	// As BumpEpoch's flush: every database known is barred to replicas
	// until resolved (those not seen yet start barred).
	v.mu.RLock()
	for _, d := range v.dbs {
		d.mu.Lock()
		d.lsn.record(v, UnknownLSN)
		d.mu.Unlock()
	}
	v.mu.RUnlock()
	v.told(cause, 1)
}

func (v *Versions) told(c Cause, n int) {
	if v.onInvalidate != nil && n > 0 {
		v.onInvalidate(c, n)
	}
}

func (v *Versions) bumped(db string, tables []string, epoch bool) (hold func()) {
	if v.onBump != nil && (epoch || len(tables) > 0) {
		return v.onBump(db, tables, epoch)
	}
	return nil
}

// CommitEpoch is BumpEpoch for a commit whose client waits for its reply
// (a session-mode transaction that may have written): when the bump could
// not reach Redis, it returns only once no instance can serve what the
// commit made stale.
func (v *Versions) CommitEpoch(db string, lsn LSN) {
	if hold := v.bumpEpoch(db, lsn, CauseEpoch); hold != nil {
		hold()
	}
}
