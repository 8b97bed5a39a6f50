package proxy

import (
	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/router"
)

// The result cache in session mode, which has no request pipeline and no
// hooks: pgone forwards the client's stream as it comes.
//
//   - On this instance the client's whole database counts as written
//     (in flight) for as long as the client stays (cacheSessionMode,
//     cachehooks.go): nothing of it is served or filled here meanwhile,
//     and its end bumps the database. So the local marks are taken before
//     any write is sent and end after it, whatever happens.
//   - Other instances (through Redis) learn of each commit when it
//     happens: as the session goroutine forwards a request it notes
//     whether the request may write (sessionWrites), and the server
//     pump bumps the database's epoch, published through Redis, at the
//     ReadyForQuery with status idle that ends a transaction in which any
//     request may have written, or at the ReadyForQuery of a request that
//     may commit whatever the status (COMMIT AND CHAIN commits in 'T'),
//     before writing it to the client (as
//     transaction mode's beforeLastReply does). So a read that any client
//     begins after seeing the commit finds the old entries invalid on
//     every instance (cache/doc.go).
//
// A request may write unless the router proves every statement it runs a
// read (writeOf, the transaction-mode marks' rule): a Query's text, the
// statement a Bind runs (the client's named statements are remembered
// with their verdict; one not seen, or not remembered, counts as a
// write), a FunctionCall always. A ROLLBACK alone ends a transaction with
// no bump; a server lost or FATAL with a write outstanding bumps (its
// outcome is unknown: a commit). The epoch, not tables: session mode
// plans nothing, and invalidating more costs only misses.

// maxSessionStatements bounds the named statements remembered per
// session-mode client; one not remembered counts as a write.
const maxSessionStatements = 4096

// sessionWrites is what a session-mode client's requests may write,
// for the cache; guarded by ss.mu. The zero value is off.
type sessionWrites struct {
	on bool
	// c and sc are the cache and the session's handle, made by
	// cacheSessionMode before the pump starts: the pump bumps through
	// them and never makes a handle itself.
	c  *cache.Cache
	sc *sessionCache
	// stmts are the client's prepared statements ("" the unnamed one) by
	// name, with what running them may do.
	stmts   map[string]stmtWrites
	request requestWrites   // the request being forwarded
	queue   []requestWrites // requests sent and not yet answered, oldest first
	// copied: a request whose Sync copy-in mode swallowed may have
	// written; it counts for the request that ends the COPY.
	copied bool
	dirty  bool // a request answered since the last idle ReadyForQuery may have written
	due    bool // the pump must bump before it writes the current reply
}

// requestWrites is what one request may do.
type requestWrites struct {
	frames   int
	write    bool // it may write
	commit   bool // it may commit, maybe keeping a transaction open (COMMIT AND CHAIN)
	rollback bool // it is one simple-protocol ROLLBACK [AND CHAIN] and nothing else
}

// stmtWrites is what running one of the client's prepared statements may do.
type stmtWrites struct {
	write, commit bool
}

// cacheSessionWritesOn starts following what the client's requests write,
// to bump c through the session's handle sc.
func (ss *session) cacheSessionWritesOn(c *cache.Cache, sc *sessionCache) {
	ss.mu.Lock()
	ss.cacheWrites = sessionWrites{on: true, c: c, sc: sc, stmts: map[string]stmtWrites{}}
	ss.mu.Unlock()
}

// cacheFrameLocked notes a client frame forwarded to the server (one
// trackSessionLocked follows; v is its view).
func (ss *session) cacheFrameLocked(v *frameView) {
	cw := &ss.cacheWrites
	if !cw.on {
		return
	}
	cw.request.frames++
	switch v.typ {
	case pgmsg.Query:
		write, all, d := ss.cacheMayWrite(v.text)
		cw.request.write = cw.request.write || write
		cw.request.commit = cw.request.commit || mayCommit(d.Reason, d.Tx)
		cw.request.rollback = cw.request.frames == 1 && d.Tx == router.TxRollback && d.Statements == 1
		if all {
			clear(cw.stmts) // SQL PREPARE: names may now mean other statements
		}
		ss.cacheRequestEndLocked()
	case pgmsg.Parse:
		if !v.ok {
			return
		}
		write, _, d := ss.cacheMayWrite(v.text)
		if _, known := cw.stmts[v.name]; known || len(cw.stmts) < maxSessionStatements {
			cw.stmts[v.name] = stmtWrites{write: write, commit: mayCommit(d.Reason, d.Tx)}
		}
	case pgmsg.Bind:
		st, known := cw.stmts[v.name]
		if !v.ok || !known || st.write {
			cw.request.write = true
		}
		if !v.ok || !known || st.commit {
			cw.request.commit = true
		}
	case pgmsg.FunctionCall:
		cw.request.write = true
		ss.cacheRequestEndLocked()
	case pgmsg.Sync:
		ss.cacheRequestEndLocked()
	}
}

// cacheLongFrameLocked notes a Query or Parse too long to read
// (trackLongText): the Query may write; the Parse's statement is unknown.
func (ss *session) cacheLongFrameLocked(frame []byte) {
	cw := &ss.cacheWrites
	if !cw.on {
		return
	}
	cw.request.frames++
	switch frame[0] {
	case pgmsg.Query:
		cw.request.write, cw.request.commit = true, true // unknown text: it may COMMIT AND CHAIN
		clear(cw.stmts)
		ss.cacheRequestEndLocked()
	case pgmsg.Parse:
		name, _, _ := pgmsg.CString(wire.Body(frame), 0)
		delete(cw.stmts, string(name))
	}
}

// cacheMayWrite tells whether running text may write (all: it may write
// what no table can be blamed for, such as DDL or PREPARE), and the
// router's decision (zero for a plain read).
func (ss *session) cacheMayWrite(text string) (write, all bool, d router.Decision) {
	if ss.lexOf(text).plainRead {
		return false, false, d
	}
	d = ss.decide(text) // plan.go
	tables, all := writeOf(StatementPlan{Text: text, Reason: d.Reason, WriteTables: d.WriteTables, Tx: d.Tx})
	return all || len(tables) > 0, all, d
}

// cacheRequestEndLocked queues the request just ended (a Query, Sync or
// FunctionCall: one ReadyForQuery each).
func (ss *session) cacheRequestEndLocked() {
	cw := &ss.cacheWrites
	r := cw.request
	r.write = r.write || cw.copied
	cw.queue = append(cw.queue, r)
	cw.request, cw.copied = requestWrites{}, false
}

// cacheCopyInLocked drops the newest n requests, whose Syncs a COPY's
// copy-in mode swallows, keeping what they may write for the next.
func (ss *session) cacheCopyInLocked(n int) {
	cw := &ss.cacheWrites
	n = min(n, len(cw.queue))
	for _, r := range cw.queue[len(cw.queue)-n:] {
		cw.copied = cw.copied || r.write
	}
	cw.queue = cw.queue[:len(cw.queue)-n]
}

// cacheReadyLocked takes the oldest request off at its ReadyForQuery
// (status): at idle, a bump is due if the transaction it ended may have
// written, unless a ROLLBACK ended it. A request that may commit makes
// the bump due at its own ReadyForQuery whatever the status: COMMIT AND
// CHAIN commits while the status stays 'T', and the writes after it are
// a new set, which a ROLLBACK [AND CHAIN] drops alone.
func (ss *session) cacheReadyLocked(status byte) {
	cw := &ss.cacheWrites
	if !cw.on {
		return
	}
	r := requestWrites{write: true} // none queued: not expected; assume a write
	if len(cw.queue) > 0 {
		r = cw.queue[0]
		cw.queue = cw.queue[1:]
	}
	cw.dirty = cw.dirty || r.write
	if status != pgmsg.TxIdle {
		switch {
		case r.commit:
			cw.due = cw.due || cw.dirty
			cw.dirty = false
		case r.rollback: // ROLLBACK AND CHAIN: the writes since the last commit are gone
			cw.dirty = false
		}
		return
	}
	cw.due = cw.due || (cw.dirty && !r.rollback)
	cw.dirty = false
}

// cacheBumpDueLocked reports, and clears, that the reply the pump is
// about to write needs a bump first: an idle ReadyForQuery after a write,
// or a FATAL (the server ends) with a write outstanding.
func (ss *session) cacheBumpDueLocked(fatal bool) bool {
	cw := &ss.cacheWrites
	due := cw.due || (fatal && cw.inDoubt())
	cw.due = false
	return due
}

// inDoubt says a write may have been sent and not yet bumped.
func (cw *sessionWrites) inDoubt() bool {
	if !cw.on {
		return false
	}
	if cw.dirty || cw.copied || cw.request.write {
		return true
	}
	for _, r := range cw.queue {
		if r.write {
			return true
		}
	}
	return false
}

// cacheSessionLost bumps before the client is told its server is lost,
// if a write was outstanding: it may have committed.
func (ss *session) cacheSessionLost() {
	ss.mu.Lock()
	doubt := ss.cacheWrites.inDoubt()
	ss.mu.Unlock()
	if doubt {
		ss.cacheSessionBump()
	}
}

// cacheSessionBump invalidates every entry of the client's database on
// every instance (Redis first, then here); the session's own marks hold.
// Called by the pump, without ss.mu, before it writes the reply that tells
// the client of the commit. It uses the handle cacheSessionMode made (read
// under ss.mu), never cacheOf: the pump must not make the handle while
// the session goroutine may.
func (ss *session) cacheSessionBump() {
	ss.mu.Lock()
	c, sc := ss.cacheWrites.c, ss.cacheWrites.sc
	ss.mu.Unlock()
	if c == nil || sc == nil {
		return // no cache when the session began
	}
	ss.guardHook("sessionBump", func() { c.Versions().CommitEpoch(sc.db, cache.UnknownLSN) })
}
