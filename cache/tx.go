package cache

import "slices"

// Tx is one client transaction's marks: the tables it may write, in flight
// from its first write until it ends. A session owns one Tx and uses it
// from its own goroutine (not safe for concurrent use); the zero value is
// an idle Tx. Every Tx that marked something must end, by Commit or End,
// whatever happens to the session (server lost, client gone): a mark left
// behind keeps its tables out of the cache.
type Tx struct {
	v      *Versions
	db     string
	tables []string
	all    bool
}

// Active says whether the Tx holds marks.
func (t *Tx) Active() bool { return t.v != nil }

// Mark puts tables of db in flight before a write to them is sent. A Tx
// writes one database: marks for another end the Tx's first, conservatively
// bumping them (a client does not switch databases inside a transaction).
func (t *Tx) Mark(v *Versions, db string, tables []string) {
	d := t.begin(v, db)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range tables {
		if slices.Contains(t.tables, name) {
			continue
		}
		d.table(name).inflight++
		t.tables = append(t.tables, name)
	}
}

// MarkAll puts the whole database in flight before a write no table can be
// blamed for (DDL, TRUNCATE, DO, CALL, a volatile function); its commit
// bumps the epoch.
func (t *Tx) MarkAll(v *Versions, db string) {
	d := t.begin(v, db)
	if t.all {
		return
	}
	d.mu.Lock()
	d.inflight++
	d.mu.Unlock()
	t.all = true
}

func (t *Tx) begin(v *Versions, db string) *dbVersions {
	if t.v != nil && (t.v != v || t.db != db) {
		t.Commit(UnknownLSN, nil)
	}
	t.v, t.db = v, db
	return v.db(db, true)
}

// Commit ends the Tx after its COMMIT (or autocommit write) succeeded at
// lsn (UnknownLSN if not known; any primary LSN read after the commit
// returned will do): it bumps every marked table and also (tables the
// commit wrote that were not marked), the epoch if MarkAll was called, and
// releases the marks in the same step. On an idle Tx it does nothing: a
// write that was never marked is bumped with Versions.Bump. A commit whose outcome is unknown
// (the server died during COMMIT) must Commit too: never assume a rollback.
func (t *Tx) Commit(lsn LSN, also []string) {
	if t.v == nil {
		return
	}
	var hold func()
	if t.v.onBump != nil {
		// Redis first (see Versions.onBump); the marks hold meanwhile.
		hold = t.v.bumped(t.db, slices.Concat(t.tables, also), t.all)
	}
	d := t.v.db(t.db, true)
	n := 0
	d.mu.Lock()
	for _, name := range t.tables {
		tv := d.table(name)
		tv.version++
		tv.lsn.record(t.v, lsn)
		tv.inflight--
		n++
	}
	for _, name := range also {
		if !slices.Contains(t.tables, name) {
			tv := d.table(name)
			tv.version++
			tv.lsn.record(t.v, lsn)
			n++
		}
	}
	if t.all {
		d.epoch++
		d.lsn.record(t.v, lsn)
		d.inflight--
	}
	d.mu.Unlock()
	t.v.told(CauseWrite, n)
	if t.all {
		t.v.told(CauseEpoch, 1)
	}
	t.reset()
	if hold != nil {
		hold() // the bump did not reach Redis: the reply waits (lease.go)
	}
}

// End ends the Tx without a bump: it rolled back, or wrote nothing that
// committed. Only call it when PostgreSQL said so (ROLLBACK's reply, an
// aborted transaction's end); when in doubt, Commit.
func (t *Tx) End() {
	if t.v == nil {
		return
	}
	d := t.v.db(t.db, true)
	d.mu.Lock()
	for _, name := range t.tables {
		d.table(name).inflight--
	}
	if t.all {
		d.inflight--
	}
	d.mu.Unlock()
	t.reset()
}

func (t *Tx) reset() {
	t.v, t.db, t.tables, t.all = nil, "", t.tables[:0], false
}
