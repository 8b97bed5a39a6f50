package proxy

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/pgerr"
	"github.com/pgone/pgone/pool"
)

// Transaction mode. The session goroutine reads whole requests (up to Sync,
// Query, FunctionCall or Flush), attaches a server connection if it has
// none, brings that server to the client's settings and prepared
// statements, and sends the request. The server pump forwards replies and
// gives the server back to the pool at a ReadyForQuery with status I when
// nothing else is outstanding.

// maxServerStatements bounds the prepared statements pgone keeps on one
// server connection; the least recently used is closed beyond it.
const maxServerStatements = 500

// settingsQuery reads the settings a session has changed (SET, set_config,
// startup parameters applied by pgone).
const settingsQuery = "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session' ORDER BY name"

// clientStatement is a client's named prepared statement.
type clientStatement struct {
	server string // server-side name
	query  string
	rest   []byte // parameter types, as in the Parse
}

// request is a client request being collected: whole frames, copied.
type request struct {
	buf    []byte
	frames [][2]int // start, end in buf
	syncs  int      // Sync, Query and FunctionCall frames: each gets a ReadyForQuery
}

func (r *request) add(frame []byte, typ byte) {
	start := len(r.buf)
	r.buf = append(r.buf, frame...)
	r.frames = append(r.frames, [2]int{start, len(r.buf)})
	if typ == 'S' || typ == 'Q' || typ == 'F' {
		r.syncs++
	}
}

func (r *request) reset() {
	r.buf = r.buf[:0]
	r.frames = r.frames[:0]
	r.syncs = 0
}

// relayTx is the session goroutine in transaction mode.
func (ss *session) relayTx() {
	var req request
	var out []byte
	for {
		typ, frame, err := ss.cr.Next()
		if err != nil {
			ss.clientGoneTx(err)
			break
		}
		ss.stats.receivedFrame(len(frame))
		switch typ {
		case 'X':
			ss.endTx()
			return
		case 'Q', 'S', 'F', 'H', 'P', 'B', 'E', 'D', 'C':
			req.add(frame, typ)
		case 'd', 'c', 'f':
			// COPY data goes straight to the server running the COPY; outside
			// COPY PostgreSQL ignores these messages, and so do we.
			ss.mu.Lock()
			server := ss.server
			if typ != 'd' {
				ss.copyIn = false
			}
			ss.mu.Unlock()
			if server != nil {
				ss.swmu.Lock()
				_, err := server.Writer().Write(frame)
				if err == nil && !ss.cr.HasFrame() {
					err = server.Writer().Flush()
				}
				ss.swmu.Unlock()
				if err != nil {
					ss.endTx()
					return
				}
			}
			continue
		default:
			ss.log.Info("invalid frontend message type", "type", typ, "sqlstate", pgerr.ProtocolViolation)
			ss.terminate(pgerr.Fatal(pgerr.ProtocolViolation, "invalid frontend message type %d", typ))
			ss.endTx()
			return
		}
		if typ != 'Q' && typ != 'S' && typ != 'F' && typ != 'H' && len(req.buf) < 1<<20 {
			continue
		}
		ss.mu.Lock()
		lost := ss.lostTx
		ss.lostTx = false
		ss.mu.Unlock()
		if lost {
			// The server died while the client sat in its transaction.
			if ss.failRequest(errServerLost, req.syncs) != nil {
				break
			}
			req.reset()
			continue
		}
		if typ == 'S' && ss.answerWithoutServer(&req) {
			req.reset()
			continue
		}
		if typ == 'H' && ss.onlyFlushWithoutServer(&req) {
			// Nothing is due: PostgreSQL would flush nothing, and a server
			// taken for it would stay until this client's next Sync.
			req.reset()
			continue
		}
		ss.waitForStatementOutcomes(&req)
		var server *pool.Conn
		for {
			server, err = ss.ensureServer(&req)
			if err != nil {
				break
			}
			ss.mu.Lock()
			if ss.server == server {
				break // still ours: rendering raises pending, so the pump keeps it
			}
			// The pump released it between our look and the lock: get another.
			ss.mu.Unlock()
		}
		if err != nil {
			if ss.failRequest(err, req.syncs) != nil {
				break
			}
			req.reset()
			continue
		}
		if ss.serverDiedIdleLocked(server, &req) { // lost.go; unlocks when true
			if ss.failRequest(errServerLost, req.syncs) != nil {
				break
			}
			req.reset()
			continue
		}
		if !ss.verifyShapesLocked(server, &req) {
			ss.mu.Unlock()
			if ss.failRequest(errStalePlan, req.syncs) != nil {
				break
			}
			req.reset()
			continue
		}
		out = ss.renderMarkedLocked(server, &req, out[:0])
		ss.stats.requestLocked(req.syncs)
		ss.mu.Unlock()
		req.reset()
		// swmu: the pump may release this server as soon as its reply is
		// in; it waits for this write to finish before handing it on.
		ss.swmu.Lock()
		w := server.Writer()
		if _, err := w.Write(out); err == nil {
			_ = w.Flush()
		}
		ss.swmu.Unlock()
		if cap(out) > 1<<20 {
			out = nil
		}
		ss.serveReplies(server, typ)
	}
	ss.endTx()
}

// inlineWait is about how long the session goroutine waits for its
// server's reply itself before the watchdog (watchInline) hands the wait to
// a pump goroutine and the session goes back to watching its client.
const inlineWait = 5 * time.Millisecond

// serveReplies gets the replies to the request just sent on their way.
// The common case, a complete request with nothing more from the client
// yet and a quick answer, is served by the session goroutine itself: no
// goroutine to start and no hand-over between threads, which is most of
// what transaction pooling would otherwise add to a query's latency. A
// pump goroutine takes over when the answer is slow (the session goroutine
// must watch its client: a disconnect or a cancel), when the client
// pipelines (its next requests must flow while replies come back), for
// COPY FROM (the client sends the data), and for pinned clients
// (notifications arrive at any time). last is the request's last message.
func (ss *session) serveReplies(server *pool.Conn, last byte) {
	ss.mu.Lock()
	if ss.pumping || ss.server != server {
		ss.mu.Unlock()
		return
	}
	if ss.pending == 0 && ss.expect.len() == 0 && !ss.pinned {
		ss.mu.Unlock()
		return // nothing to wait for (a lone Flush)
	}
	complete := last == 'S' || last == 'Q' || last == 'F' || last == 'H'
	if !complete || ss.pinned || ss.cr.Buffered() > 0 {
		ss.startPumpLocked(server)
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	ss.inlineMu.Lock()
	if ss.terminated.Load() {
		ss.inlineMu.Unlock()
		return // the client is being closed: endTx takes the server
	}
	ss.inlineServer = server
	ss.inlineSince.Store(time.Now().UnixNano())
	ss.inlineMu.Unlock()
	ss.pumpLoop(server, true)
}

// startPumpLocked hands the server's replies to a pump goroutine.
func (ss *session) startPumpLocked(server *pool.Conn) {
	ss.pumping = true
	go ss.pumpServerTx(server)
}

// stopInline ends the session goroutine's own reading of server replies.
// It runs before the server is released, handed to a pump or closed.
func (ss *session) stopInline(server *pool.Conn) {
	ss.inlineMu.Lock()
	ss.inlineServer = nil
	ss.inlineSince.Store(0)
	interrupted := ss.inlineInterrupted
	ss.inlineInterrupted = false
	ss.inlineMu.Unlock()
	if interrupted {
		_ = server.NetConn().SetReadDeadline(time.Time{})
	}
}

// interruptInline makes the session goroutine's wait for its server's
// reply, begun at since, end now with a deadline error: the reply is slow
// and a pump goroutine should wait for it (or the session is ending).
func (ss *session) interruptInline(since int64) {
	ss.inlineMu.Lock()
	defer ss.inlineMu.Unlock()
	if ss.inlineServer == nil || (since != 0 && ss.inlineSince.Load() != since) {
		return // done, or a newer wait
	}
	ss.inlineInterrupted = true
	_ = ss.inlineServer.NetConn().SetReadDeadline(time.Now())
}

// watchInline is the watchdog of inline waits: every inlineWait it
// interrupts the sessions that have waited longer than that. It costs each
// request two atomic stores instead of a timer, and runs until the server
// has shut down.
func (s *Server) watchInline() {
	t := time.NewTicker(inlineWait)
	defer t.Stop()
	var slow []*session
	var since []int64
	for range t.C {
		now := time.Now().UnixNano()
		slow, since = slow[:0], since[:0]
		s.mu.Lock()
		if s.draining && len(s.sessions) == 0 {
			s.mu.Unlock()
			return
		}
		for ss := range s.sessions {
			if t := ss.inlineSince.Load(); t != 0 && now-t >= int64(inlineWait) {
				slow = append(slow, ss)
				since = append(since, t)
			}
		}
		s.mu.Unlock()
		for i, ss := range slow {
			ss.interruptInline(since[i])
		}
	}
}

// answerWithoutServer answers a request made only of named Parses and
// statement Closes, then Sync, while the session holds no server: pgone
// records the statements and replies itself; the Parse reaches a server
// ahead of the first Bind or Describe that needs it. Clients that prepare
// synchronously (pgbench -M prepared, libpq's PQprepare) would otherwise
// wait for a server held by another of their own connections. Only
// statements a server has prepared before qualify (answerableParse), so
// that an error in a Parse comes at once, as from PostgreSQL.
func (ss *session) answerWithoutServer(req *request) bool {
	ss.mu.Lock()
	attached := ss.server != nil
	ss.mu.Unlock()
	if attached || req.syncs != 1 {
		return false
	}
	for i, fr := range req.frames {
		frame := req.buf[fr[0]:fr[1]]
		switch frame[0] {
		case 'P':
			if pf, ok := decodeParse(frame); !ok || !ss.answerableParse(pf) {
				return false
			}
		case 'C':
			if kind, _, ok := targetOf(frame); !ok || kind != 'S' {
				return false
			}
		case 'S':
			if i != len(req.frames)-1 {
				return false
			}
		default:
			return false
		}
	}
	var reply []byte
	for _, fr := range req.frames {
		frame := req.buf[fr[0]:fr[1]]
		switch frame[0] {
		case 'P':
			pf, _ := decodeParse(frame)
			ss.prepared[pf.name] = newClientStatement(pf)
			reply = append(reply, '1', 0, 0, 0, 4)
		case 'C':
			_, name, _ := targetOf(frame)
			delete(ss.prepared, name)
			if name == "" {
				ss.closeUnnamedWithoutServer()
			}
			reply = append(reply, '3', 0, 0, 0, 4)
		case 'S':
			reply = append(reply, 'Z', 0, 0, 0, 5, 'I')
		}
	}
	if err := ss.writeRaw(reply); err != nil {
		ss.terminate(nil)
	}
	return true
}

// onlyFlushWithoutServer reports whether req is made of Flushes alone
// while the session holds no server.
func (ss *session) onlyFlushWithoutServer(req *request) bool {
	for _, fr := range req.frames {
		if req.buf[fr[0]] != 'H' {
			return false
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.server == nil
}

// ensureServer returns the attached server, acquiring one when the
// session has none: of the primary, or of a replica when the request is a
// read and its database splits reads (split.go). It is called with a
// request in hand.
func (ss *session) ensureServer(req *request) (*pool.Conn, error) {
	set := ss.splitFor()
	ss.mu.Lock()
	server := ss.server
	draining := ss.draining
	if server != nil && ss.slot != nil && ss.mayMoveLocked(set, req) {
		// A replica still answers earlier pipelined requests, all synced.
		// A request for the primary waits for those answers: if they leave
		// no transaction open the replica is released and the request is
		// routed afresh; inside a read-only transaction it stays there.
		for ss.server == server && (ss.pending > 0 || ss.expect.len() > 0) && !ss.closed {
			ss.idle.Wait()
		}
		server = ss.server
	}
	if server != nil && ss.slot == nil && !ss.mayWrite && set != nil && set.fenced() {
		// Another request on an attached primary (pipelined, or in a
		// transaction begun by a read that found no replica): it may write.
		ss.mayWrite = true
	}
	ss.mu.Unlock()
	if server != nil {
		return server, nil
	}
	if draining {
		ss.terminate(shutdownError())
		return nil, errSessionEnded
	}
	var route routeDecision
	if set != nil {
		route = ss.routeRequest(set, req)
		if route.slot != nil {
			if server = ss.tryAcquire(route.slot); server == nil {
				var err error
				server, err = ss.waitForServer(route.slot)
				if err != nil {
					if pgerr.CodeOf(err) == string(pgerr.TooManyConnections) {
						return nil, err // the replica's queue timed out, as the primary's would
					}
					route.slot.failedAt.Store(time.Now().UnixNano())
					ss.log.Warn("replica unreachable; reads go elsewhere until it is checked again",
						"replica", route.slot.addr, "err", err)
					route = routeDecision{reason: reasonReplicaError}
				}
			}
		}
		ss.srv.countRoute(ss.poolKey.Database, route)
	}
	if server == nil {
		server = ss.tryAcquire(nil)
	}
	if server == nil {
		var err error
		if server, err = ss.waitForServer(nil); err != nil {
			return nil, err
		}
	}
	ss.mu.Lock()
	ss.server = server
	ss.serverFatal, ss.captured = false, nil
	ss.slot = route.slot
	if route.slot != nil {
		route.slot.inflight.Add(1)
	} else if set != nil && set.fenced() && route.mayWrite() {
		// What runs on the primary may write: the client's later reads
		// must see it (see releasedLocked).
		ss.mayWrite = true
	}
	if server.State.Settings != ss.settingsKey {
		// Bring the server to the client's settings before its request.
		sql := "RESET ALL"
		if ss.settingsKey != "" {
			sql += "; " + ss.settingsKey
		}
		ss.prelude = encodeQuery(ss.prelude[:0], sql)
		ss.expect.push(expectation{kind: 'Q', injected: true})
		ss.pending++
		server.State.Settings = ss.settingsKey
	}
	ss.mu.Unlock()
	return server, nil
}

// waitForServer acquires a server of the primary (slot nil) or of a
// replica when none is idle: it waits in the pool's queue or dials, and
// tells a client that waits long why.
func (ss *session) waitForServer(slot *replicaSlot) (*pool.Conn, error) {
	ctx := ss.srv.ctx // ends the wait when pgone is forced down
	if after := ss.srv.snap.Load().poolCfg.WaitNoticeAfter; after > 0 {
		t := time.AfterFunc(after, func() {
			_ = ss.send(&pgproto3.NoticeResponse{
				Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "01000",
				Message: fmt.Sprintf("pgone: waiting for a server connection to database %q for over %s", ss.database, after),
				Hint:    "The pool is busy; the request runs as soon as a server connection is free.",
			})
		})
		defer t.Stop()
	}
	server, err := ss.acquire(ctx, slot)
	if err != nil {
		if pgerr.CodeOf(err) == "" {
			err = pgerr.New(pgerr.ConnectionFailure, "could not connect to server for database %q: %v", ss.database, err)
		}
		return nil, err
	}
	return server, nil
}

var errSessionEnded = errors.New("session ended")

// failRequest answers a request that could not get a server: the error,
// then one ReadyForQuery per Sync or Query the client is waiting on.
func (ss *session) failRequest(err error, syncs int) error {
	if errors.Is(err, errSessionEnded) {
		return err
	}
	ss.log.Info("request failed: no server connection", "sqlstate", pgerr.CodeOf(err), "err", err)
	ss.countError(err)
	msgs := []pgproto3.BackendMessage{pgerr.ToResponse(err)}
	for i := 0; i < syncs; i++ {
		msgs = append(msgs, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	return ss.send(msgs...)
}

// renderLocked turns a client request into what the server gets: prepared
// statement names mapped to server-side ones, Parses injected where the
// server lacks a statement, and a settings snapshot after statements that
// change settings. It records an expectation per message sent.
func (ss *session) renderLocked(server *pool.Conn, req *request, out []byte) []byte {
	out = ss.takePreludeLocked(server, out)
	st := &server.State
	snapshot := false
	for _, fr := range req.frames {
		frame := req.buf[fr[0]:fr[1]]
		typ := frame[0]
		switch typ {
		case 'P':
			out = ss.renderParseLocked(out, st, frame)
		case 'B':
			out = ss.renderBindLocked(out, st, frame)
		case 'D':
			out = ss.renderDescribeLocked(out, st, frame)
		case 'C':
			out = ss.renderCloseLocked(out, st, frame)
		case 'Q':
			text, _, _ := cstringAt(wire.Body(frame), 0)
			d := ss.statementLocked(text)
			e := expectation{kind: 'Q'}
			if d.DiscardAll || d.DeallocateAll {
				clear(ss.prepared)
				st.ForgetAllPrepared()
				e.forgetPrepared = true
			}
			out = ss.renderQueryLocked(out, st, frame, text, e)
			ss.pending++
		case 'S', 'F':
			out = append(out, frame...)
			if typ == 'S' && ss.copyIn {
				continue // ignored by a server in copy-in mode: no ReadyForQuery
			}
			ss.expect.push(expectation{kind: typ})
			ss.pending++
		case 'E':
			out = append(out, frame...)
			ss.expect.push(expectation{kind: 'E'})
		case 'H':
			out = append(out, frame...)
		}
		if typ == 'Q' || typ == 'S' || typ == 'F' {
			snapshot = ss.settingsDirty && !ss.pinned
		}
	}
	if snapshot {
		st.UnnamedOwner = 0 // a Query drops the unnamed statement
		out = encodeQuery(out, ss.snapshotSQL())
		ss.expect.push(expectation{kind: 'Q', injected: true, capture: true})
		ss.pending++
	}
	if ss.deadlineArmed && ss.pending > 0 {
		// A request is running: the idle timeouts do not apply until its end.
		_ = ss.nc.SetReadDeadline(time.Time{})
		ss.deadlineArmed = false
	}
	return out
}

// takePreludeLocked appends the settings query ensureServer queued for a
// new server. Its expectation was queued first, so whatever is sent to that
// server next must start with it.
func (ss *session) takePreludeLocked(server *pool.Conn, out []byte) []byte {
	if len(ss.prelude) > 0 {
		server.State.UnnamedOwner = 0 // a Query drops the unnamed statement
	}
	out = append(out, ss.prelude...)
	ss.prelude = ss.prelude[:0]
	return out
}

// injectParse prepares cs on the server ahead of a Bind or Describe.
// What the statement does to the session applies now if pgone answered
// its Parse itself (answerWithoutServer).
func (ss *session) injectParse(out []byte, st *pool.SessionState, cs clientStatement) []byte {
	ss.statementLocked(cs.query)
	name := ss.srv.statementName(cs.server)
	if evict := st.AddPrepared(name, maxServerStatements); evict != "" {
		out = encodeTarget(out, 'C', 'S', evict)
		ss.expect.push(expectation{kind: 'C', injected: true, statement: evict})
	}
	out = encodeParse(out, name, cs.query, cs.rest)
	ss.expect.push(expectation{kind: 'P', injected: true, statement: name, base: cs.server})
	return out
}

// statementLocked classifies a statement about to be sent and applies
// what it does to the session: pins, a settings snapshot after the
// request, and, after DDL, fresh function volatility for routing.
func (ss *session) statementLocked(text string) Classification {
	d := ss.routeText(text)
	if d.ChangesSettings {
		ss.settingsDirty = true
	}
	if d.DDL {
		ss.ddl = true
		ss.srv.functionsChanged(ss.poolKey.Database)
	}
	return d
}

// routeText classifies a statement and applies what it does to the
// session: pins.
func (ss *session) routeText(text string) Classification {
	var d Classification
	if ss.srv.classifier != nil {
		d = ss.srv.classifier.Classify(text, ss.txStatus != 'I')
	}
	if len(d.Pins) > 0 && !ss.pinned {
		ss.pinned = true
		ss.log.Info("client pinned to its server connection", "reason", d.Pins[0])
		ss.srv.countPin(d.Pins[0])
	}
	return d
}

// snapshotSQL re-applies startup parameters that a RESET took back to the
// server default (PostgreSQL would keep the startup value), then reads the
// session's settings.
func (ss *session) snapshotSQL() string {
	if len(ss.startupParams) == 0 {
		return settingsQuery
	}
	return reapplyStartupSQL(ss.startupParams) + "; " + settingsQuery
}

// settingsKeyOf is the statement that applies settings; it doubles as the
// key telling whether a server already carries them.
func settingsKeyOf(rows [][]string) string {
	params := make([]param, 0, len(rows))
	for _, r := range rows {
		if len(r) == 2 {
			params = append(params, param{r[0], r[1]})
		}
	}
	sort.Slice(params, func(i, j int) bool { return params[i].name < params[j].name })
	return applyParamsSQL(params)
}

// readOnlyDefault reports whether settings rows (name, setting) turn
// default_transaction_read_only on: the client's transactions are then
// read only unless they say otherwise, and may run on a replica.
func readOnlyDefault(rows [][]string) bool {
	for _, r := range rows {
		if len(r) == 2 && r[0] == "default_transaction_read_only" {
			return r[1] == "on"
		}
	}
	return false
}

// pumpServerTx is the pump goroutine of transaction mode.
func (ss *session) pumpServerTx(server *pool.Conn) { ss.pumpLoop(server, false) }

// pumpLoop forwards server replies in transaction mode, matching them to
// expectations, and releases the server when the session is idle. Run
// inline by the session goroutine (see serveReplies), it returns once the
// replies to what was sent are in, with the server kept when a transaction
// is open, or hands over to a pump goroutine.
func (ss *session) pumpLoop(server *pool.Conn, inline bool) {
	fr := server.Frames()
	interruptible := inline
	for {
		if interruptible && fr.WaitHeader() == nil && fr.Spans() {
			// A deadline must not fire inside a frame: this one, and the
			// rest of the reply, are read inline to the end.
			ss.stopInline(server)
			interruptible = false
		}
		typ, frame, err := fr.Next()
		if err != nil {
			if inline {
				ss.stopInline(server)
				if errors.Is(err, os.ErrDeadlineExceeded) && !fr.Broken() && !ss.terminated.Load() {
					// Slow answer: a pump goroutine waits for it.
					ss.mu.Lock()
					ss.startPumpLocked(server)
					ss.mu.Unlock()
					return
				}
				if ss.terminated.Load() {
					// The client is being closed: endTx closes the server,
					// which is mid-request.
					return
				}
			}
			ss.serverEndedTx(server, err, fr.Broken() || inline)
			return
		}
		ss.wmu.Lock()
		ss.mu.Lock()
		// A FATAL: the server is going away (pg_terminate_backend, restart);
		// a cancel pgone sent for query_timeout: say so (lost.go, timeout.go).
		typ, frame = ss.serverFatalLocked(typ, frame)
		frame = ss.queryCanceledLocked(typ, frame)
		forward, release := true, false
		if typ == 'Z' {
			// What was sent after an error already reported got no reply:
			// the server skipped it to this Sync.
			skipped := ss.expect.skipUnanswered(nil)
			for i := len(skipped) - 1; i >= 0; i-- {
				ss.undoLocked(&server.State, skipped[i], false)
			}
		}
		e := ss.expect.front()

		switch {
		case typ == 'N' || typ == 'A' || typ == 'S':
			// Notices, notifications and parameter changes always reach the client.
		case e == nil:
			// Nothing expected: an unsolicited message (e.g. a FATAL); forward it.
		case typ == 'E':
			// A failed injected Parse explains the Bind's failure: the
			// client sees it, unless pgone's own statement failed.
			forward = !(e.injected && (e.kind == 'Q' || e.quiet))
			if forward {
				ss.errorForwardedLocked()
			} else {
				ss.log.Warn("pgone's own statement failed on the server", "err", errorText(frame))
			}
			if e.kind == 'B' && e.base != "" && isStalePlan(frame) {
				// The statement's result type changed (DDL): every server's
				// copy is stale. The client gets this error once; its next
				// prepare uses a fresh server-side name everywhere.
				ss.srv.retireStatement(e.base)
			}
			frame = ss.serverErrorLocked(&server.State, e, frame, forward)
		case typ == 'Z':
			forward = !e.injected
			status := frame[wire.HeaderLen]
			if e.capture {
				key := settingsKeyOf(ss.captured)
				ss.settingsKey = key
				ss.defaultReadOnly = readOnlyDefault(ss.captured)
				server.State.Settings = key
				if status == 'I' {
					ss.settingsDirty = false
				}
				ss.captured = nil
			}
			if e.forgetPrepared {
				server.State.ForgetAllPrepared()
			}
			ss.expect.pop()
			ss.pending--
			ss.txStatus = status
			release = ss.pending == 0 && status == 'I' && ss.expect.len() == 0 && !ss.pinned && !ss.closed
			if release {
				ss.server = nil
				ss.pumping = false
				ss.releasedLocked()
			} else if ss.pending == 0 {
				ss.idle.Broadcast() // a request for the primary may wait for this (ensureServer)
			}
			ss.setIdleDeadlineLocked()
		default:
			forward = !e.injected
			if typ == 'G' && e.kind == 'E' {
				// COPY FROM STDIN via Execute: Syncs already sent behind it
				// reach the server in copy-in mode and get no ReadyForQuery.
				ss.copyIn = true
				ss.pending -= ss.expect.dropSyncsAfterFront()
			}
			if e.capture {
				switch typ {
				case 'T':
					ss.captured = ss.captured[:0]
				case 'D':
					ss.captured = append(ss.captured, decodeTextRow(frame))
				}
			}
			if completes(e.kind, typ) {
				if e.kind == 'P' && e.base != "" {
					ss.srv.parsed.add(ss.parsedKey(e.base))
				}
				if e.kind == 'D' {
					if e.shape != nil {
						e.shape <- shapeHash(frame)
					} else if e.shapeOf != "" {
						ss.shapes[e.shapeOf] = shapeHash(frame)
					}
				}
				ss.expect.pop()
			}
		}
		ss.countReplyLocked(typ, frame, forward)
		ss.wakeStatementWaiterLocked()
		closeAfter := typ == 'Z' && ss.draining && ss.stateLocked() == stateIdle
		// Inline: stop once what was sent is answered (the server stays
		// attached in a transaction), or hand over to a pump goroutine for
		// COPY FROM and for a client pinned by this request.
		settled := inline && !release && ss.pending == 0 && ss.expect.len() == 0
		handOff := inline && !release && (typ == 'G' || typ == 'W' || (settled && ss.pinned))
		if handOff {
			ss.stopInline(server)
			ss.pumping = true // the pump starts once frame, which it would overwrite, is written
		} else if settled || (inline && release) {
			ss.stopInline(server)
		}
		ss.mu.Unlock()
		var werr error
		cw := ss.writerLocked()
		if forward {
			_, werr = cw.Write(frame)
		}
		if release {
			// The server goes back to the pool before the client hears
			// ReadyForQuery: its next request finds it idle rather than
			// dialing another or queueing behind its own release.
			ss.swmu.Lock() // the session goroutine may still be finishing its write
			ss.swmu.Unlock()
			ss.srv.pools.Release(server)
		}
		// Flush at the end of what the server sent, and when this reader
		// stops (settled): bytes the server sent after its ReadyForQuery
		// (a FATAL) would otherwise hold the reply back.
		if werr == nil && (release || closeAfter || settled || !fr.HasFrame()) {
			werr = cw.Flush()
		}
		if release {
			ss.parkWriterLocked()
		}
		ss.wmu.Unlock()
		if handOff {
			go ss.pumpServerTx(server)
		}
		if release {
			if closeAfter {
				ss.terminate(shutdownError())
			}
			return
		}
		if werr != nil && !handOff {
			// The client is gone mid-reply: end the session first, so the
			// server is not taken for lost.
			if inline {
				ss.stopInline(server)
			}
			ss.terminate(nil)
			ss.serverEndedTx(server, werr, true)
			return
		}
		if closeAfter {
			ss.log.Info("closing client for shutdown after its transaction")
			ss.terminate(shutdownError())
		}
		if handOff || settled {
			return
		}
	}
}

// setIdleDeadlineLocked arms the client read deadline for
// idle_transaction_timeout or client_idle_timeout after a ReadyForQuery.
func (ss *session) setIdleDeadlineLocked() {
	if ss.pending != 0 {
		return
	}
	limits := ss.srv.snap.Load().cfg.Limits
	var d time.Duration
	if ss.txStatus != 'I' {
		d = limits.IdleTransactionTimeout
	} else {
		d = limits.ClientIdleTimeout
	}
	if d > 0 {
		_ = ss.nc.SetReadDeadline(time.Now().Add(d))
		ss.deadlineArmed = true
	} else if ss.deadlineArmed {
		_ = ss.nc.SetReadDeadline(time.Time{})
		ss.deadlineArmed = false
	}
}

func decodeTextRow(frame []byte) []string {
	var dr pgproto3.DataRow
	if dr.Decode(wire.Body(frame)) != nil {
		return nil
	}
	row := make([]string, len(dr.Values))
	for i, v := range dr.Values {
		row[i] = string(v)
	}
	return row
}

func errorText(frame []byte) string {
	er, ok := decodeError(frame)
	if !ok {
		return "undecodable error"
	}
	return string(er.Code) + " " + string(er.Message)
}

// serverEndedTx handles the end of a pump that did not release its server.
// When the session is ending (endTx waits on pumpDone) the server goes back
// through pumpDone. Otherwise the server is lost: it is closed, and the
// client's transaction with it. Each request waiting for replies gets one
// error (the server's own if one was forwarded, else 08006 or 08007, see
// lost.go) and ReadyForQuery; a client idle in its transaction gets 08006 at
// its next request. A pinned client loses state it cannot get back, so it
// is closed.
func (ss *session) serverEndedTx(server *pool.Conn, err error, broken bool) {
	ss.mu.Lock()
	closed := ss.closed
	var waiting []expectation
	pinned := ss.pinned
	if !closed && ss.server == server {
		ss.server = nil
		ss.pumping = false
		ss.releasedLocked()
		for e := ss.expect.front(); e != nil; e = ss.expect.front() {
			if e.endsRequest() {
				waiting = append(waiting, *e)
			}
			if e.shape != nil {
				e.shape <- 0
			}
			ss.expect.pop()
		}
		if len(waiting) == 0 && ss.txStatus != 'I' {
			ss.lostTx = true
		}
		ss.pending = 0
		ss.txStatus = 'I'
	}
	ss.mu.Unlock()
	if closed {
		if errors.Is(err, os.ErrDeadlineExceeded) && !broken {
			ss.pumpDone <- server
			return
		}
		ss.srv.pools.Discard(server)
		ss.pumpDone <- nil
		return
	}
	ss.srv.pools.Discard(server)
	msgs, inDoubt := lostAnswers(waiting)
	code := pgerr.ConnectionFailure
	if inDoubt {
		code = pgerr.TransactionResolutionUnknown
	}
	ss.log.Warn("server connection lost", "server", server.Addr(), "err", err, "sqlstate", code, "pinned", pinned)
	if pinned {
		msg := "server connection lost"
		if inDoubt {
			msg = errOutcomeUnknown.Message
		}
		ss.terminate(pgerr.Fatal(code, "%s", msg))
		return
	}
	if len(msgs) == 0 {
		return
	}
	if err := ss.send(msgs...); err != nil {
		ss.terminate(nil)
	}
}

// clientGoneTx reports why the client's stream ended; idle timeouts get
// their own errors.
func (ss *session) clientGoneTx(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		ss.mu.Lock()
		inTx := ss.txStatus != 'I'
		ss.mu.Unlock()
		if inTx {
			ss.log.Info("idle_transaction_timeout: closing client", "sqlstate", pgerr.IdleInTransactionTimeout)
			ss.terminate(pgerr.Fatal(pgerr.IdleInTransactionTimeout, "terminating connection due to idle-in-transaction timeout"))
		} else {
			ss.log.Info("client_idle_timeout: closing client", "sqlstate", pgerr.IdleSessionTimeout)
			ss.terminate(pgerr.Fatal(pgerr.IdleSessionTimeout, "terminating connection due to idle-session timeout"))
		}
		return
	}
	ss.clientGone(err)
}

// endTx is the end of a transaction-mode session: stop the pump and give
// the server back clean (rolled back; reset if the client was pinned), or
// close it.
func (ss *session) endTx() {
	ss.stopQueryTimer()
	ss.mu.Lock()
	server := ss.server
	ss.closed = true
	ss.releasedLocked()
	idle := ss.pending == 0 && ss.expect.len() == 0
	pinned := ss.pinned
	pumping := ss.pumping
	ss.mu.Unlock()
	if server == nil {
		return
	}
	if pumping {
		_ = server.NetConn().SetReadDeadline(time.Now())
		got := <-ss.pumpDone
		_ = server.NetConn().SetReadDeadline(time.Time{})
		if got == nil {
			return // the pump already closed it
		}
	}
	ss.mu.Lock()
	server.TxStatus = ss.txStatus
	ss.mu.Unlock()
	if !idle {
		ss.discardBusy(server)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if pinned {
		err = server.Reset(ctx)
	} else {
		err = server.Rollback(ctx)
	}
	if err != nil {
		ss.log.Info("server connection could not be cleaned; closing it", "err", err)
		ss.srv.pools.Discard(server)
		return
	}
	ss.srv.pools.Release(server)
}

// isStalePlan reports whether an ErrorResponse frame is PostgreSQL's
// "cached plan must not change result type".
func isStalePlan(frame []byte) bool {
	er, ok := decodeError(frame)
	return ok && string(er.Code) == string(pgerr.FeatureNotSupported) &&
		strings.Contains(string(er.Message), "cached plan must not change result type")
}

// errStalePlan is PostgreSQL's error for a prepared statement whose result
// type changed since the client prepared it.
var errStalePlan = pgerr.New(pgerr.FeatureNotSupported, "cached plan must not change result type")

// shapeHash identifies a statement's result shape by its RowDescription (or
// NoData) reply.
func shapeHash(frame []byte) uint64 {
	h := fnv.New64a()
	h.Write(frame)
	return h.Sum64() | 1 // never 0, which means "no answer"
}

// verifyShapesLocked prepares, on a server that lacks them, the statements
// the request binds or describes, and checks that their result shape is the
// one the client was told when it prepared. A client prepared before a DDL
// would otherwise get rows it cannot decode from a server that prepared the
// statement after it; PostgreSQL tells such a client "cached plan must not
// change result type", and so does pgone (false: fail the request). It
// waits for one round trip, only when a statement is new to this server.
// Called and returns with ss.mu held.
func (ss *session) verifyShapesLocked(server *pool.Conn, req *request) bool {
	type check struct {
		name string // client statement
		cs   clientStatement
	}
	if ss.txStatus != 'I' || len(ss.shapes) == 0 {
		// Inside a transaction the server does not change; with no shapes
		// known there is nothing to compare.
		return true
	}
	var checks []check
	seen := map[string]bool{}
	for _, fr := range req.frames {
		frame := req.buf[fr[0]:fr[1]]
		var name string
		switch frame[0] {
		case 'B':
			_, n, _, ok := bindStatement(frame)
			if !ok {
				continue
			}
			name = n
		case 'D':
			kind, n, ok := targetOf(frame)
			if !ok || kind != 'S' {
				continue
			}
			name = n
		default:
			continue
		}
		cs, ok := ss.prepared[name]
		if name == "" || !ok || seen[name] {
			continue
		}
		if _, known := ss.shapes[name]; !known || server.State.HasPrepared(ss.srv.statementName(cs.server)) {
			continue
		}
		seen[name] = true
		checks = append(checks, check{name, cs})
	}
	if len(checks) == 0 {
		return true
	}
	got := make(chan uint64, len(checks))
	out := ss.takePreludeLocked(server, nil)
	for _, c := range checks {
		out = ss.injectParse(out, &server.State, c.cs)
		out = encodeTarget(out, 'D', 'S', ss.srv.statementName(c.cs.server))
		ss.expect.push(expectation{kind: 'D', injected: true, shape: got})
	}
	out = append(out, 'S', 0, 0, 0, 4)
	ss.expect.push(expectation{kind: 'S', injected: true})
	ss.pending += 2 // the Sync, and a hold so the pump keeps the server for the request
	if !ss.pumping {
		ss.startPumpLocked(server)
	}
	ss.mu.Unlock()
	ss.swmu.Lock()
	w := server.Writer()
	if _, err := w.Write(out); err == nil {
		_ = w.Flush()
	}
	ss.swmu.Unlock()
	shapes := make([]uint64, 0, len(checks))
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for len(shapes) < len(checks) {
		select {
		case h := <-got:
			shapes = append(shapes, h)
		case <-timeout.C:
			shapes = append(shapes, 0)
		}
	}
	ss.mu.Lock()
	ss.pending-- // the hold
	for i, c := range checks {
		if h := shapes[i]; h != 0 && h != ss.shapes[c.name] {
			ss.log.Info("prepared statement changed shape since the client prepared it", "statement", c.name)
			// Other servers' copies predate the change too.
			ss.srv.retireStatement(c.cs.server)
			return false
		}
	}
	return true
}
