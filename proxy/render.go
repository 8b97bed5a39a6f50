package proxy

import (
	"sort"
	"time"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
)

// The render stage of transaction mode: what the server gets for a client
// request. The prelude (settings for a new server) goes first; prepared
// statement names are mapped to server-side ones and Parses injected where
// the server lacks a statement (statements.go); a settings snapshot follows
// statements that change settings. Every message sent is recorded as an
// expectation (expect.go), so the reply handlers know what answers what.

// maxServerStatements bounds the prepared statements pgone keeps on one
// server connection; the least recently used is closed beyond it.
const maxServerStatements = 500

// settingsQuery reads the settings a session has changed (SET, set_config,
// startup parameters applied by pgone).
const settingsQuery = "SELECT name, setting FROM pg_catalog.pg_settings WHERE source = 'session' ORDER BY name"

// renderLocked turns a client request into what the server gets: prepared
// statement names mapped to server-side ones, Parses injected where the
// server lacks a statement, and a settings snapshot after statements that
// change settings. It records an expectation per message sent.
func (ss *session) renderLocked(server *pool.Conn, req *request, out []byte) []byte {
	out = ss.takePreludeLocked(server, out)
	st := &server.State
	snapshot := false
	for i := range req.frames {
		frame, v := req.frame(i), &req.views[i]
		typ := frame[0]
		switch typ {
		case pgmsg.Parse:
			out = ss.renderParseLocked(out, st, frame, v)
		case pgmsg.Bind:
			out = ss.renderBindLocked(out, st, frame, v)
		case pgmsg.Describe:
			out = ss.renderDescribeLocked(out, st, frame, v)
		case pgmsg.Close:
			out = ss.renderCloseLocked(out, st, frame, v)
		case pgmsg.Query:
			out = ss.renderSimpleQueryLocked(out, st, frame, v.text)
		case pgmsg.Sync, pgmsg.FunctionCall:
			out = append(out, frame...)
			if typ == pgmsg.Sync && ss.copyIn {
				continue // ignored by a server in copy-in mode: no ReadyForQuery
			}
			ss.expect.push(expectation{kind: typ})
			ss.pending++
		case pgmsg.Execute:
			out = append(out, frame...)
			ss.expect.push(expectation{kind: pgmsg.Execute})
		case pgmsg.Flush:
			out = append(out, frame...)
		}
		if pgmsg.EndsRequest(typ) {
			snapshot = ss.settingsDirty && !ss.pinned
		}
	}
	if snapshot {
		out = ss.renderSnapshotLocked(out, st)
	}
	if ss.deadlineArmed && ss.pending > 0 {
		// A request is running: the idle timeouts do not apply until its end.
		_ = ss.nc.SetReadDeadline(time.Time{})
		ss.deadlineArmed = false
	}
	return out
}

// renderSimpleQueryLocked renders a simple Query: DEALLOCATE is mapped to
// server-side names, DISCARD ALL and DEALLOCATE ALL forget every prepared
// statement (deallocate.go). text is the Query's (frameView).
func (ss *session) renderSimpleQueryLocked(out []byte, st *pool.SessionState, frame []byte, text string) []byte {
	d := ss.statementLocked(text, ss.lexOf(text))
	e := expectation{kind: pgmsg.Query}
	if d.DiscardAll || d.DeallocateAll {
		clear(ss.prepared)
		st.ForgetAllPrepared()
		e.forgetPrepared = true
	}
	out = ss.renderQueryLocked(out, st, frame, text, e)
	ss.pending++
	return out
}

// renderSnapshotLocked appends the query that reads the session's settings
// back after a request that changed them; its rows are captured by the
// reply handlers.
func (ss *session) renderSnapshotLocked(out []byte, st *pool.SessionState) []byte {
	st.UnnamedOwner = 0 // a Query drops the unnamed statement
	out = encodeQuery(out, ss.snapshotSQL())
	ss.expect.push(expectation{kind: pgmsg.Query, injected: true, capture: true})
	ss.pending++
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
	ss.statementLocked(cs.query, cs.lex)
	name := ss.srv.statementName(cs.server)
	if evict := st.AddPrepared(name, maxServerStatements); evict != "" {
		out = encodeTarget(out, pgmsg.Close, pgmsg.TargetStatement, evict)
		ss.expect.push(expectation{kind: pgmsg.Close, injected: true, statement: evict})
	}
	out = encodeParse(out, name, cs.query, cs.rest)
	ss.expect.push(expectation{kind: pgmsg.Parse, injected: true, statement: name, base: cs.server})
	return out
}

// statementLocked classifies a statement about to be sent and applies
// what it does to the session: pins, a settings snapshot after the
// request, and, after DDL, fresh function volatility for routing.
func (ss *session) statementLocked(text string, lx lexed) Classification {
	d := ss.routeText(text, lx)
	if d.ChangesSettings {
		ss.settingsDirty = true
	}
	if d.DDL {
		ss.ddl = true
		ss.srv.functionsChanged(ss.poolKey.Database)
	}
	return d
}

// routeText classifies a statement (from the request's plan) and applies
// what it does to the session: pins.
func (ss *session) routeText(text string, lx lexed) Classification {
	d := ss.effectsOf(text, lx) // plan.go
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
