package proxy

import (
	"context"
	"slices"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// Hooks are the request pipeline's extension points in transaction mode,
// for the result cache and the tuner. A session calls them from its own
// goroutine or its pump, one call at a time; an implementation shared by
// sessions must be safe for concurrent use. A hook's panic is recovered and
// logged: it never fails the request. With no hooks set (the default) the
// pipeline builds no view and calls nothing.
type Hooks interface {
	// BeforeSend is called once a request is planned, before a server is
	// acquired, when the session holds no server and waits for no reply.
	// ok true answers the request without a server: answer is the whole
	// reply (ending with one ReadyForQuery, status I, per Sync or Query),
	// written to the client as is. The cache's lookup goes here.
	BeforeSend(ctx context.Context, p *PlanView) (answer []byte, ok bool)
	// AfterReply is called when the last ReadyForQuery of a request sent
	// to a server has been written to the client. The cache's fill and the
	// tuner's samples go here. r.Frames is valid only during the call. A
	// request whose server was lost under it (lost.go) gets no call.
	AfterReply(ctx context.Context, p *PlanView, r ReplySample)
	// AfterCommit is called after AfterReply when a request ended a
	// transaction (or an implicit one) that committed writes through pgone.
	// Cache invalidation goes here.
	AfterCommit(ctx context.Context, c CommitInfo)
}

// CommitLSNHooks are Hooks whose AfterCommit needs CommitInfo.LSN. The
// position is learnt as read-your-writes learns it (pool.Monitor): the
// primary's insert position sampled after the commit, one query on the
// replica monitor's own connection, shared by every session committing
// within the same 2ms. AfterCommit then waits for that sample (the client
// already has its reply, but the session reads its next request after
// the call). Hooks that do not implement it, or answer false, get LSN 0.
type CommitLSNHooks interface {
	Hooks
	WantsCommitLSN() bool
}

// SetHooks sets the pipeline's only hooks, replacing any set before; nil
// removes them all. Call it before Serve.
func (s *Server) SetHooks(h Hooks) {
	s.hooks = nil
	if h != nil {
		s.AddHooks(h)
	}
}

// AddHooks adds h to the pipeline's hooks (hookset.go), after those set
// before: the cache and the tuner run side by side. Call it before Serve.
func (s *Server) AddHooks(h Hooks) {
	s.hooks = s.hooks.with(h)
}

// PlanView is a read-only view of a request's plan (plan.go): one router
// decision per statement the request runs, in order.
type PlanView struct {
	database, user string
	stmts          []StatementPlan
	// For the cache's hooks (cachehooks.go): the session, the request
	// (only during BeforeSend) and what they decided.
	ss    *session
	req   *request
	cache cacheRequest
}

// requestMarker is implemented by hooks that must see every request before
// it is sent, also inside a transaction where BeforeSend is not called:
// the cache marks writes in flight there.
type requestMarker interface {
	markRequest(p *PlanView)
	requestUnsent(p *PlanView)
}

// StatementPlan is the router's decision on one statement of a request.
// The table slices are shared with the router's cache: do not modify them
// (they are clipped, so an append copies).
type StatementPlan struct {
	Text        string
	Target      router.Target
	Reason      router.Reason
	ReadTables  []string
	WriteTables []string
	Cacheable   bool
	Fingerprint uint64
	Tx          router.TxEffect
}

// Database and User are the client's pool: who may see the result.
func (v *PlanView) Database() string { return v.database }
func (v *PlanView) User() string     { return v.user }

// Len is the number of statements planned; Statement returns the i-th.
func (v *PlanView) Len() int                      { return len(v.stmts) }
func (v *PlanView) Statement(i int) StatementPlan { return v.stmts[i] }

// ReplySample is what a request's replies were.
type ReplySample struct {
	// Frames are the replies as the client got them (hooks_frames.go):
	// read only, valid only during AfterReply.
	Frames     ReplyFrames
	Outcome    Outcome
	Rows       int           // DataRows forwarded
	Bytes      int           // bytes forwarded to the client
	ServerTime time.Duration // from the request's write to its last ReadyForQuery
	WaitTime   time.Duration // waiting for a server (and for earlier replies it depends on)
	TxStatus   byte          // of the last ReadyForQuery
	Replica    bool          // it ran on a replica
	// ReplayLSN is that replica's replay position as the monitor sampled
	// it before the request was sent: a lower bound of what it saw.
	ReplayLSN pool.LSN
}

// CommitInfo is a committed transaction's writes.
type CommitInfo struct {
	Database, User string
	WriteTables    []string // sorted, unique
	// LSN covers the commit: the primary's WAL insert position sampled
	// after it, so at or past its commit record (an upper bound: a replica
	// that replayed LSN has the commit). 0 when unknown: the hooks did not
	// ask (CommitLSNHooks), the database has no replica monitor, or the
	// primary did not answer in time.
	LSN pool.LSN
}

// requestView follows one request through the replies for the hooks. It
// is built by the session goroutine and, once the request is sent, changed
// only by the reply handlers under ss.mu.
type requestView struct {
	plan      PlanView
	ends      int // the request's Syncs and Queries still waiting for ReadyForQuery
	sent      time.Time
	sample    ReplySample
	frames    *[]byte  // the forwarded frames, from framesPool; nil once over maxHookFrames
	writes    []string // tables the request's statements write
	rollback  bool     // it runs ROLLBACK
	commit    *CommitInfo
	committed time.Time // when the commit's ReadyForQuery came
}

// beforeSend plans the whole request and offers it to BeforeSend. It
// returns the view the reply handlers fill, or answered when the hook
// answered the request.
func (ss *session) beforeSend(h *hookSet, req *request) (v *requestView, answered bool) {
	ss.planAll(req)
	v = &requestView{plan: PlanView{database: ss.poolKey.Database, user: ss.poolKey.User, ss: ss, req: req}, frames: takeFrames()}
	defer func() {
		if v != nil {
			v.plan.req = nil // reset after the request is served
		}
	}()
	for _, st := range ss.plan.stmts {
		d := st.d
		v.plan.stmts = append(v.plan.stmts, StatementPlan{Text: st.text, Target: d.Target, Reason: d.Reason,
			ReadTables: slices.Clip(d.ReadTables), WriteTables: slices.Clip(d.WriteTables), Cacheable: d.Cacheable, Fingerprint: d.Fingerprint, Tx: d.Tx})
		v.writes = append(v.writes, d.WriteTables...)
		v.rollback = v.rollback || d.Tx == router.TxRollback
	}
	for _, m := range h.markers {
		m.markRequest(&v.plan)
	}
	ss.mu.Lock()
	idle := ss.server == nil && ss.pending == 0 && ss.expect.len() == 0
	ss.mu.Unlock()
	if !idle {
		return v, false
	}
	began := time.Now()
	answer, by, ok := ss.callBeforeSend(h, &v.plan)
	if !ok {
		return v, false
	}
	ss.hooksAnswered(h, &v.plan, by, answer, time.Since(began)) // hookset.go
	v.plan.req = nil
	putFrames(v.frames)
	if err := ss.writeRaw(answer); err != nil {
		ss.terminate(nil)
	}
	return nil, true
}

// watchRequestLocked attaches v to the request ends rendered since the
// expectation queue held before of them, and starts its clock.
func (ss *session) watchRequestLocked(v *requestView, before int, wait time.Duration) {
	for k, added := 0, ss.expect.appended(ss.expect.len()-before); k < len(added); k++ {
		if e := &added[k]; e.endsRequest() {
			e.view = v
			v.ends++
		}
	}
	v.sample.WaitTime = wait
	v.sample.Replica = ss.slot != nil
	v.sample.ReplayLSN = ss.slotReplay
	v.sent = time.Now()
}

// sampleReplyLocked accounts a reply to the request v follows; at its last
// ReadyForQuery (ends) it completes the sample and tells whether the
// transaction committed writes. It returns v when the request is done.
func (ss *session) sampleReplyLocked(v *requestView, typ byte, r *reply, ends bool) *requestView {
	if r.forward {
		v.sample.Bytes += len(r.frame)
		v.keepFrame(r.frame)
		switch typ {
		case pgmsg.DataRow:
			v.sample.Rows++
		case pgmsg.ErrorResponse:
			v.sample.Outcome = OutcomeError
		}
	}
	if !ends {
		return nil
	}
	if v.ends--; v.ends > 0 {
		return nil
	}
	now := time.Now()
	v.sample.ServerTime = now.Sub(v.sent)
	v.sample.TxStatus = r.frame[wire.HeaderLen]
	ss.txWrites = append(ss.txWrites, v.writes...)
	ss.txAborted = ss.txAborted || v.sample.Outcome == OutcomeError || v.rollback || v.sample.TxStatus == pgmsg.TxFailed
	if v.sample.TxStatus == pgmsg.TxIdle {
		if !ss.txAborted && len(ss.txWrites) > 0 {
			tables := slices.Clone(ss.txWrites)
			slices.Sort(tables)
			v.commit = &CommitInfo{Database: v.plan.database, User: v.plan.user, WriteTables: slices.Compact(tables)}
			v.committed = now
		}
		ss.txWrites, ss.txAborted = ss.txWrites[:0], false
	}
	return v
}

// afterReplyHooks calls AfterReply of every hook, and AfterCommit if the
// request committed writes. The frames go back to their pool once the
// hooks return: they were told the frames are valid only during the call.
func (ss *session) afterReplyHooks(v *requestView) {
	h := ss.srv.hooks
	ctx := ss.srv.ctx
	v.sample.Frames = v.replyFrames()
	for _, hk := range h.list {
		ss.guardHook("AfterReply", func() { hk.AfterReply(ctx, &v.plan, v.sample) })
	}
	v.sample.Frames = ReplyFrames{}
	putFrames(v.frames)
	v.frames = nil
	if v.commit != nil {
		var lsn pool.LSN
		if h.wantLSN {
			lsn = ss.srv.commitLSN(ctx, v.plan.database, v.committed, ss.log) // hooks_lsn.go
		}
		for i, hk := range h.list {
			c := *v.commit
			if h.wantsLSN[i] {
				c.LSN = lsn
			}
			ss.guardHook("AfterCommit", func() { hk.AfterCommit(ctx, c) })
		}
	}
}

// callBeforeSend offers the request to each hook in turn: the first
// answer wins, and the hooks after it are not asked.
func (ss *session) callBeforeSend(h *hookSet, p *PlanView) (answer []byte, by int, ok bool) {
	for i, hk := range h.list {
		ss.guardHook("BeforeSend", func() { answer, ok = hk.BeforeSend(ss.srv.ctx, p) })
		if ok && len(answer) > 0 {
			return answer, i, true
		}
	}
	return nil, -1, false
}

// guardHook runs a hook call; a panic is logged, not passed on.
func (ss *session) guardHook(name string, call func()) {
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("hook panicked; the request goes on without it", "hook", name, "panic", p)
		}
	}()
	call()
}

// hooksRequestUnsent tells the hooks a request they saw before send was
// never sent.
func (ss *session) hooksRequestUnsent(v *requestView) {
	if v == nil {
		return
	}
	for _, m := range ss.srv.hooks.markers {
		m.requestUnsent(&v.plan)
	}
}
