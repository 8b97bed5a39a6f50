package proxy

import (
	"context"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// The result cache in transaction mode: the pipeline's hooks (hooks.go)
// implemented by the cache, with a per-session handle (sessionCache) that
// the hooks reach through the PlanView.
//
//   - Before send, for EVERY request (also inside a transaction, where
//     BeforeSend is not called): what it may write is marked in flight
//     (markRequest), so no entry of those tables is served or filled
//     until the write has ended.
//   - BeforeSend (idle session, no transaction): a cacheable read
//     (cacherules.go) is looked up; a hit is the answer, a miss keeps a
//     fill.
//   - beforeLastReply (just before the request's last ReadyForQuery is
//     written to the client): at status idle the session's marks end:
//     RolledBack only when PostgreSQL said so (a single statement's error
//     outside a block, or ROLLBACK), Committed otherwise; at a COMMIT AND
//     CHAIN (status 'T') Committed too (endInTxLocked). Ending them
//     before the client sees the commit is what lets other pgone instances
//     (through Redis) never serve what it made stale.
//   - AfterReply: the fill is stored if the reply is replayable, else
//     abandoned.
//   - A lost server (08006/08007) or a request never sent: Committed with
//     an unknown LSN; the session's end: cache.Session.Close.
//
// Commit LSNs are not asked for (UnknownLSN). A miss runs on a replica
// only if its replay LSN, sampled before the pick, proves it replayed the
// last invalidation of the tables read; else on the primary
// (router.ReasonCacheFill): cachereplica.go.

// cacheHooks are the Hooks of a server with the cache on.
type cacheHooks struct {
	c *cache.Cache
	// mode is cache.mode, the mode of databases whose entry sets no
	// cache_mode (modeOf).
	mode    cache.Mode
	rules   cacheRules
	logical *cacheLogical // cache.invalidation: logical (cachefeed.go), or nil
	// catalogs are what the databases' catalogs say about caching
	// (cachecatalog.go).
	catalogs cacheCatalogs
	unknown  unknownLSNs // cachereplica.go
	// admission admits more statements in mode auto (cacheadmission.go).
	admission CacheAdmission
}

// SetCache turns the result cache on for transaction mode: c answers and
// stores reads cfg's rules allow for the databases whose mode is not off
// (a database's cache_mode, else cfg.Mode; an empty cfg.Mode counts as
// rules), and every write through this server invalidates it, whatever
// its database's mode. It is added after the hooks set before it
// (hookset.go), so add it first to let it answer first; a cache set
// before is replaced in its place. Call it before Serve.
func (s *Server) SetCache(c *cache.Cache, cfg cache.Config) {
	mode := cfg.Mode
	if mode == "" {
		mode = cache.ModeRules
	}
	s.AddHooks(&cacheHooks{c: c, mode: mode, rules: compileRules(cfg.Rules)})
}

// modeOf is the cache mode of a session's database in the configuration
// in force, so a RELOAD that changes a database's cache_mode applies to
// its next request.
func (h *cacheHooks) modeOf(ss *session) cache.Mode {
	return ss.srv.snap.Load().cfg.CacheModeFor(ss.database, h.mode)
}

// sessionCache is one client session's cache handle. The session
// goroutine (marks, lookups) and its pump (fills, ends) both use it: mu
// serializes them. Never take mu while holding ss.mu.
type sessionCache struct {
	mu  sync.Mutex
	cs  *cache.Session
	key []byte // the request key's buffer
	// db and role are the key's Database and Role, fixed for the session:
	// worked out once rather than per request.
	db, role string
	// fed says the session saw its database's invalidation stream started
	// (ensureFeed); a database in mode off does not start it.
	fed atomic.Bool
	// open counts requests that marked writes and whose end is not seen;
	// commitDue says one of them ended its transaction with a commit (or
	// maybe did) while a later request was still out.
	open      int
	commitDue bool
}

// cacheRequest is what the cache hooks decided about one request, kept
// in its PlanView.
type cacheRequest struct {
	marked bool // it marked writes (sessionCache.open counts it)
	ended  bool // beforeLastReply counted its end (before AfterReply)
	fill   bool // it is the session's pending fill
	single bool // one statement, one Sync or Query
	ttl    time.Duration
}

// cacheDatabaseOf names the PostgreSQL database a session's requests run
// in for the cache: server address and database name, so that two pgone
// database names for one database share their versions (a write through
// one invalidates reads through the other).
func cacheDatabaseOf(t pool.Target) string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) + "/" + t.Database
}

// cacheSessionMode marks the whole database of a session-mode client as
// written on this instance for as long as the client stays, since session
// mode has no hooks: nothing of that database is served from the cache or
// filled here meanwhile, and its end invalidates the database. Each of
// its commits is published to the other instances when it happens
// (cachesession.go). The returned func ends it. Without the cache it does
// nothing.
func (ss *session) cacheSessionMode() (end func()) {
	h := ss.srv.hooks.cacheHooks()
	if h == nil {
		return func() {}
	}
	sc := ss.cacheOf(h.c)
	sc.mu.Lock()
	sc.cs.Write(sc.db, nil, true)
	sc.mu.Unlock()
	ss.cacheSessionWritesOn(h.c, sc) // cachesession.go: each commit is published when it happens
	return ss.cacheClosed
}

// cacheOf returns the session's handle, made on first use (after the
// startup, when the session's target and user are known).
func (ss *session) cacheOf(c *cache.Cache) *sessionCache {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.cache == nil {
		// Role: the client's user and the role pgone logs in to the server as.
		ss.cache = &sessionCache{cs: c.NewSession(), db: cacheDatabaseOf(ss.target),
			role: ss.poolKey.User + "\x00" + ss.target.User}
		if h := ss.srv.hooks.cacheHooks(); h != nil && h.modeOf(ss) != cache.ModeOff {
			ss.ensureFeed(h, ss.cache.db)
			ss.cache.fed.Store(true)
		}
	}
	return ss.cache
}

// withCache runs f holding the session's handle locked; if the session
// never made one (no cacheable or writing request yet) there is nothing
// to end and f is not run.
func (ss *session) withCache(f func(sc *sessionCache)) {
	ss.mu.Lock()
	sc := ss.cache
	ss.mu.Unlock()
	if sc == nil {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	f(sc)
}

// markRequest marks what the request may write, before it is sent:
// called for every request, in a transaction or not.
func (h *cacheHooks) markRequest(p *PlanView) {
	var tables []string
	all := false
	runs := 0
	for i := range p.req.frames {
		switch p.req.frame(i)[0] {
		case pgmsg.Query, pgmsg.Bind:
			runs++
		case pgmsg.FunctionCall:
			all = true // no statement text: anything may be written
		}
	}
	if runs > len(p.stmts) {
		all = true // a Bind of a statement pgone could not plan
	}
	for _, st := range p.stmts {
		t, a := writeOf(st)
		tables = append(tables, t...)
		all = all || a
	}
	p.cache.single = len(p.stmts) == 1 && p.req.syncs == 1
	if len(tables) == 0 && !all {
		return // a read: no handle needed (BeforeSend makes one to look up)
	}
	sc := p.ss.cacheOf(h.c)
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.cs.Write(sc.db, h.tableNames(sc.db, tables), all)
	sc.open++
	p.cache.marked = true
}

// BeforeSend answers a cacheable read from the cache, or keeps its fill,
// unless the session's database is in mode off.
func (h *cacheHooks) BeforeSend(ctx context.Context, p *PlanView) ([]byte, bool) {
	if len(p.stmts) != 1 || p.cache.marked {
		return nil, false
	}
	mode := h.modeOf(p.ss)
	if mode == cache.ModeOff {
		return nil, false
	}
	st := p.stmts[0]
	ttl, ok := h.cacheableRead(st, mode) // cacheadmission.go
	if !ok {
		return nil, false
	}
	shape := cacheShape(p.req)
	if shape == shapeNone {
		return nil, false
	}
	ss := p.ss
	ss.mu.Lock()
	settings := ss.settingsKey
	usable := !ss.settingsDirty && !ss.pinned && !ss.lostTx && ss.txStatus == pgmsg.TxIdle
	target := ss.target
	ss.mu.Unlock()
	if !usable {
		return nil, false // the settings in the key might not be the session's
	}
	sc := ss.cacheOf(h.c)
	if !sc.fed.Load() { // the database was off when the session began
		ss.ensureFeed(h, sc.db)
		sc.fed.Store(true)
	}
	if !h.catalogAllows(ctx, ss, sc.db, target, st.ReadTables) {
		return nil, false
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.cs.InTransaction() || sc.open > 0 {
		return nil, false // the session's own write has not ended
	}
	key, ok := ss.appendRequestKey(sc.key[:0], p.req)
	sc.key = key
	if !ok {
		return nil, false
	}
	in := cache.KeyInput{Database: sc.db, Role: sc.role,
		Settings: settings, Shape: shape, Text: string(key)}
	h.resolveUnknownLSN(ss.plan.set, sc.db)
	reply, hit := sc.cs.Lookup(ctx, &in, h.tableNames(sc.db, st.ReadTables))
	if hit {
		ss.unnamedParsedByHit(p.req)
		return reply, true
	}
	p.cache.fill, p.cache.ttl = true, ttl
	h.routeFill(ss, sc)
	return nil, false
}

// unnamedParsedByHit does to the session what the Parse of the unnamed
// statement in a request answered by a hit did on PostgreSQL (the reply
// has its ParseComplete): that statement is now the client's unnamed one,
// for a later Bind without a Parse.
func (ss *session) unnamedParsedByHit(req *request) {
	for i := range req.views {
		v := &req.views[i]
		if v.typ != pgmsg.Parse || !v.ok || v.name != "" {
			continue
		}
		cs := clientStatement{server: unnamedTooLarge}
		if len(v.text) <= maxUnnamedText {
			cs = newClientStatement(v, ss.lexOf(v.text), nil)
		}
		ss.mu.Lock()
		ss.unnamedChangedLocked()
		ss.stmts.unnamed = &cs
		ss.mu.Unlock()
	}
}

// AfterReply stores or abandons the request's fill and ends the session's
// marks when its transaction ended.
func (h *cacheHooks) AfterReply(_ context.Context, p *PlanView, r ReplySample) {
	p.ss.withCache(func(sc *sessionCache) {
		if p.cache.fill {
			h.fillLocked(sc, r, p.cache.ttl)
		}
		if p.cache.marked && !p.cache.ended {
			sc.open--
		}
		h.endLocked(sc, p, r)
	})
}

// beforeLastReplyHooks tells the cache's hooks of a request's last
// ReadyForQuery just before it is written to the client (replies.go).
func (ss *session) beforeLastReplyHooks(v *requestView) {
	if h := ss.srv.hooks.cacheHooks(); h != nil {
		ss.guardHook("beforeLastReply", func() { h.beforeLastReply(&v.plan, v.sample) })
	}
}

// beforeLastReply ends the session's marks when the request ended its
// transaction, before the client can learn that it committed: the bump
// (and with Redis, its publication to every instance) happens before the
// commit's ReadyForQuery is written, so a read that any client begins
// after seeing the commit finds the old entries invalid on every
// instance (cache/doc.go). With Redis this holds the commit's reply for
// one Redis call at most (4x cache.redis.timeout).
func (h *cacheHooks) beforeLastReply(p *PlanView, r ReplySample) {
	p.ss.withCache(func(sc *sessionCache) {
		if p.cache.marked {
			sc.open--
			p.cache.ended = true
		}
		h.endLocked(sc, p, r)
	})
}

func (h *cacheHooks) fillLocked(sc *sessionCache, r ReplySample, ttl time.Duration) {
	if r.Outcome != OutcomeOK || r.TxStatus != pgmsg.TxIdle ||
		r.Frames.Len() > h.c.MaxEntryBytes() || !replayable(r.Frames) {
		sc.cs.Abandon()
		return
	}
	from := cache.Origin{Replica: r.Replica, ReplayLSN: cache.LSN(r.ReplayLSN)}
	sc.cs.Store(r.Frames.AppendTo(make([]byte, 0, r.Frames.Len())), ttl, from)
}

// endLocked ends the session's marks at the end of a transaction, once no
// marked request is still out. A request that committed while keeping a
// transaction open (COMMIT AND CHAIN) ends them too: endInTxLocked.
func (h *cacheHooks) endLocked(sc *sessionCache, p *PlanView, r ReplySample) {
	if !sc.cs.InTransaction() {
		return
	}
	if r.TxStatus != pgmsg.TxIdle {
		endInTxLocked(sc, p)
		return
	}
	if !rolledBack(p, r) {
		sc.commitDue = true
	}
	if sc.open > 0 {
		return
	}
	if sc.commitDue {
		sc.cs.Committed(cache.UnknownLSN, nil)
	} else {
		sc.cs.RolledBack()
	}
	sc.commitDue = false
}

// endInTxLocked ends the session's marks at a request answered with a
// transaction still open: bumped if it may have committed (COMMIT AND
// CHAIN commits while the status stays 'T'; the writes after it are marked
// anew), dropped if it was a ROLLBACK AND CHAIN and nothing committed
// since they were made; else they wait for the transaction's end. Either
// once no marked request is still out.
func endInTxLocked(sc *sessionCache, p *PlanView) {
	for _, st := range p.stmts {
		if mayCommit(st.Reason, st.Tx) {
			sc.commitDue = true
		}
	}
	if sc.open > 0 {
		return
	}
	switch {
	case sc.commitDue:
		sc.cs.Committed(cache.UnknownLSN, nil)
		sc.commitDue = false
	case p.cache.single && p.stmts[0].Tx == router.TxRollback && p.stmts[0].Reason == router.ReasonTransactionControl:
		sc.cs.RolledBack() // ROLLBACK AND CHAIN
	}
}

// rolledBack reports that PostgreSQL certainly rolled back the
// transaction this request ended: a single statement that failed (its
// implicit transaction, or a failed COMMIT), or a ROLLBACK. Anything else
// counts as a commit: an invalidation too many costs a miss.
func rolledBack(p *PlanView, r ReplySample) bool {
	if !p.cache.single {
		return false
	}
	switch p.stmts[0].Reason {
	case router.ReasonMultiStatement, router.ReasonTooLong, router.ReasonTooComplex:
		// "...; COMMIT; ...; ROLLBACK" committed before it rolled back.
		return false
	}
	if r.Outcome == OutcomeError {
		return true
	}
	return p.stmts[0].Tx == router.TxRollback
}

// AfterCommit is not used: marks end in AfterReply, where a rollback is
// also seen.
func (h *cacheHooks) AfterCommit(context.Context, CommitInfo) {}

// requestUnsent ends what the hooks began for a request that was never
// sent (no server could be had).
func (h *cacheHooks) requestUnsent(p *PlanView) {
	p.ss.withCache(func(sc *sessionCache) {
		if p.cache.fill {
			sc.cs.Abandon()
		}
		if p.cache.marked {
			if sc.open--; sc.open == 0 {
				sc.cs.Committed(cache.UnknownLSN, nil) // invalidating more is safe
				sc.commitDue = false
			}
		}
	})
}

// cacheServerLost: the server died under the session (08006, or 08007
// with a commit in doubt). Whatever it was writing may have committed.
func (ss *session) cacheServerLost() {
	ss.withCache(func(sc *sessionCache) {
		sc.cs.Abandon()
		sc.cs.Committed(cache.UnknownLSN, nil)
		sc.open, sc.commitDue = 0, false
	})
}

// cacheClosed ends the session's use of the cache.
func (ss *session) cacheClosed() {
	ss.withCache(func(sc *sessionCache) { sc.cs.Close() })
}
