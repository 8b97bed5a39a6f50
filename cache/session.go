package cache

import (
	"context"
	"time"
)

// Session is one client session's use of the cache: its key builder, its
// transaction's marks and its current request's fill. The proxy keeps one
// per client session and calls it from the session's goroutine only (not
// safe for concurrent use); Close it when the session ends.
type Session struct {
	c    *Cache
	keys KeyBuilder
	tx   Tx
	fill *Fill
}

// NewSession returns a session's handle on c.
func (c *Cache) NewSession() *Session { return &Session{c: c} }

// Lookup is Cache.Lookup for the read in: a hit returns the reply (the
// whole answer, shared: write it, do not modify it) and true. A miss
// returns false and keeps the fill: after the read, call Store or
// Abandon. A fill still pending from an earlier request is abandoned.
func (s *Session) Lookup(ctx context.Context, in *KeyInput, tables []string) ([]byte, bool) {
	s.Abandon()
	reply, f := s.c.Lookup(ctx, s.keys.Key(in), in.Database, tables)
	if f != nil {
		s.fill = f
		return nil, false
	}
	return reply, true
}

// Pending says a miss waits for Store or Abandon.
func (s *Session) Pending() bool { return s.fill != nil }

// Store offers the pending miss's reply (handed over, not copied) to the
// cache; without a pending miss it does nothing and returns RefuseStore.
func (s *Session) Store(reply []byte, ttl time.Duration, from Origin) Refusal {
	if s.fill == nil {
		return RefuseStore
	}
	r := s.fill.Store(reply, ttl, from)
	s.fill = nil
	return r
}

// Abandon ends the pending miss, if any, storing nothing.
func (s *Session) Abandon() {
	if s.fill != nil {
		s.fill.Abandon()
		s.fill = nil
	}
}

// Write marks what a request is about to write, before it is sent: the
// tables it writes in db, or the whole database if the write cannot be
// attributed to tables (DDL, TRUNCATE, GRANT, DO, CALL, a volatile
// function). Marks last until Committed or RolledBack.
func (s *Session) Write(db string, tables []string, unattributable bool) {
	if unattributable {
		s.tx.MarkAll(s.c.versions, db)
	}
	if len(tables) > 0 {
		s.tx.Mark(s.c.versions, db, tables)
	}
}

// Committed ends the transaction after PostgreSQL committed it at lsn
// (UnknownLSN if not known), bumping what it marked and also.
func (s *Session) Committed(lsn LSN, also []string) { s.tx.Commit(lsn, also) }

// RolledBack ends the transaction after PostgreSQL rolled it back.
func (s *Session) RolledBack() { s.tx.End() }

// InTransaction says the session holds marks (a write not yet ended).
func (s *Session) InTransaction() bool { return s.tx.Active() }

// Close ends the session's use of the cache: a pending miss is abandoned
// and marks still held are committed with an unknown LSN, since pgone
// cannot know whether a transaction cut short committed.
func (s *Session) Close() {
	s.Abandon()
	s.tx.Commit(UnknownLSN, nil)
}
