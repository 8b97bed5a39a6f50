package proxy

import (
	"encoding/binary"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
)

// Prepared statements in transaction mode. A client's named statement maps
// to a server-side name derived from its text (clientStatement.server);
// each server connection records which of those it holds
// (pool.SessionState), and renderLocked prepares a statement where a Bind
// or Describe needs it. The unnamed statement cannot be shared: each
// client's is remembered, and a request that uses the unnamed statement
// without parsing it on the server first gets the client's own parsed
// again, or, if the client has none, the server's closed, so that the
// server answers 26000 as PostgreSQL would. Unnamed and named portals need
// nothing: a server is released only at ReadyForQuery outside a
// transaction, when PostgreSQL has dropped every portal.
//
// What pgone sends in a span the server skips after an error (up to Sync)
// did not happen: serverErrorLocked undoes its bookkeeping, in reverse
// order, on the server's record and on the client's statements.

// statementState is a session's statement state besides its named
// statements, guarded by session.mu.
type statementState struct {
	unnamed *clientStatement // the client's unnamed statement; nil: none
	id      uint64           // the session's owner id on servers, from sessionIDs
	// waiting: the session goroutine waits for the outcome of messages
	// sent (waitForStatementOutcomes); the pump wakes it at each reply.
	waiting bool
}

// sessionIDs numbers sessions as owners of servers' unnamed statements.
var sessionIDs atomic.Uint64

// ownerID is the session's id as an owner of a server's unnamed statement.
func (ss *session) ownerID() uint64 {
	if ss.stmts.id == 0 {
		ss.stmts.id = sessionIDs.Add(1)
	}
	return ss.stmts.id
}

// unnamedChangedLocked is called when the client's unnamed statement
// changes (Parse, Close, simple Query): the session's next ownerID is a new
// id. A server that holds the client's previous unnamed statement holds it
// under the old id, so the next Bind or Describe there parses the current
// one again (or closes it) instead of running the previous one.
func (ss *session) unnamedChangedLocked() { ss.stmts.id = 0 }

// closeUnnamedWithoutServer drops the client's unnamed statement while it
// holds no server: with a new owner id, no server holds its unnamed
// statement any more, so its next use gets the server's closed.
func (ss *session) closeUnnamedWithoutServer() {
	ss.stmts.unnamed, ss.stmts.id = nil, 0
}

// maxUnnamedText bounds the unnamed statement text a session keeps to
// parse again on another server. A client's larger unnamed statement is
// usable on the server that parsed it, in its request or transaction; on
// another server it does not exist (26000), so that pgone does not keep a
// copy of every huge query text.
const maxUnnamedText = 1 << 20

// unnamedTooLarge marks (as clientStatement.server) an unnamed statement
// over maxUnnamedText, of which pgone kept no text.
const unnamedTooLarge = "\x00too large"

// maxParsedStatements bounds parsedStatements.
const maxParsedStatements = 10000

// parsedStatements are the statements (parsedKey) a server has prepared
// without error. A named Parse+Sync of one of them is answered without a
// server (answerWithoutServer); any other goes to a server, so that an
// error in it comes at once, as from PostgreSQL. Emptied when full.
type parsedStatements struct {
	mu   sync.RWMutex
	keys map[uint64]struct{}
}

func (p *parsedStatements) has(key uint64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	_, ok := p.keys[key]
	return ok
}

func (p *parsedStatements) add(key uint64) {
	if p.has(key) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keys == nil || len(p.keys) >= maxParsedStatements {
		p.keys = map[uint64]struct{}{}
	}
	p.keys[key] = struct{}{}
}

// wellFormedParamTypes reports whether the rest of a Parse (after the
// query) is exactly a parameter type count and that many OIDs. A server
// answers anything else with 08P01, and so must pgone.
func wellFormedParamTypes(rest []byte) bool {
	if len(rest) < 2 {
		return false
	}
	n := int(binary.BigEndian.Uint16(rest))
	return len(rest) == 2+4*n
}

// newClientStatement copies what a client Parse (v) defines. A statement
// of the same text and parameter types as like (the client's previous
// unnamed one, which pgbench -M extended parses again every request) takes
// its text, name and parameter types rather than copying and hashing them
// again; neither is ever modified.
func newClientStatement(v *frameView, lx lexed, like *clientStatement) clientStatement {
	if like != nil && like.server != unnamedTooLarge && like.query == v.text && string(like.rest) == string(v.rest) {
		return clientStatement{server: like.server, query: like.query, rest: like.rest, lex: lx}
	}
	return clientStatement{server: serverStatementName(v.text, v.rest), query: v.text,
		rest: append([]byte(nil), v.rest...), lex: lx}
}

// answerableParse reports whether pgone may answer a client's named Parse
// itself: the statement is well formed, its name is free, and a server has
// prepared the same statement before, so it is known to parse.
func (ss *session) answerableParse(v *frameView) bool {
	if !v.ok || v.name == "" || !wellFormedParamTypes(v.rest) {
		return false
	}
	if _, taken := ss.prepared[v.name]; taken {
		return false // 42P05 comes from a server (renderParseLocked)
	}
	return ss.srv.parsed.has(ss.parsedKey(serverStatementName(v.text, v.rest)))
}

// parsedKey is the key of a statement in parsedStatements: whether a
// statement parses depends on the database, the role and the settings
// (search_path), not only on its text.
func (ss *session) parsedKey(base string) uint64 {
	h := fnv.New64a()
	for _, s := range [...]string{ss.poolKey.Database, ss.poolKey.User, ss.settingsKey, base} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// renderParseLocked renders a client Parse (v decodes frame).
func (ss *session) renderParseLocked(out []byte, st *pool.SessionState, frame []byte, v *frameView) []byte {
	if !v.ok || !wellFormedParamTypes(v.rest) {
		// The server rejects it before it touches any statement.
		ss.expect.push(expectation{kind: pgmsg.Parse})
		return append(out, frame...)
	}
	// Pins and settings changes of a prepared statement apply when it is
	// prepared.
	lx := ss.lexOf(v.text)
	ss.statementLocked(v.text, lx)
	if v.name == "" {
		prev := ss.stmts.unnamed
		set := ss.unnamedStatementLocked(v, lx, prev)
		ss.unnamedChangedLocked()
		ss.stmts.unnamed = set
		st.UnnamedOwner = ss.ownerID()
		ss.expect.push(expectation{kind: pgmsg.Parse, unnamed: true, unnamedSet: set, unnamedPrev: prev})
		return append(out, frame...)
	}
	if old, taken := ss.prepared[v.name]; taken {
		return ss.renderDuplicateParseLocked(out, st, v.name, old)
	}
	cs := newClientStatement(v, lx, nil)
	ss.prepared[v.name] = cs
	delete(ss.shapes, v.name)
	name := ss.srv.statementName(cs.server)
	if st.HasPrepared(name) {
		// Re-parse under the shared name: close it first (replies swallowed).
		out = encodeTarget(out, pgmsg.Close, pgmsg.TargetStatement, name)
		ss.expect.push(expectation{kind: pgmsg.Close, injected: true, statement: name})
	} else if evict := st.AddPrepared(name, maxServerStatements); evict != "" {
		out = encodeTarget(out, pgmsg.Close, pgmsg.TargetStatement, evict)
		ss.expect.push(expectation{kind: pgmsg.Close, injected: true, statement: evict})
	}
	out = encodeParse(out, name, cs.query, cs.rest)
	ss.expect.push(expectation{kind: pgmsg.Parse, statement: name, base: cs.server, client: v.name, creates: true})
	return out
}

// unnamedStatementLocked returns the client's unnamed statement after its
// Parse v (lx: lexText of its text). The same statement as prev again
// (pgbench -M extended, or any client running one query over and over)
// is prev itself, unless an unanswered message still records prev: undoing
// what the server skipped tells statements apart by pointer
// (undoLocked), and nothing modifies a statement once made.
func (ss *session) unnamedStatementLocked(v *frameView, lx lexed, prev *clientStatement) *clientStatement {
	if len(v.text) > maxUnnamedText {
		return &clientStatement{server: unnamedTooLarge}
	}
	if prev != nil && prev.server != unnamedTooLarge && prev.query == v.text &&
		string(prev.rest) == string(v.rest) && !ss.expect.refersTo(prev) {
		return prev
	}
	cs := newClientStatement(v, lx, prev)
	return &cs
}

// renderDuplicateParseLocked renders a Parse of a name the client has
// already prepared. PostgreSQL answers 42P05 and keeps the first
// statement; so does the server when it gets a Parse of the first
// statement's server-side name, which it holds (prepared first if it did
// not). The error names the client's statement (clientNamesInError).
func (ss *session) renderDuplicateParseLocked(out []byte, st *pool.SessionState, client string, old clientStatement) []byte {
	name := ss.srv.statementName(old.server)
	if !st.HasPrepared(name) {
		out = ss.injectParse(out, st, old)
	}
	out = encodeParse(out, name, old.query, old.rest)
	ss.expect.push(expectation{kind: pgmsg.Parse, client: client, base: old.server})
	return out
}

// ensureNamedLocked returns the server-side name of the client's
// statement name, prepared on the server first if it lacks it. An unknown
// name is returned as it is: the server answers with its own error.
func (ss *session) ensureNamedLocked(out []byte, st *pool.SessionState, name string) ([]byte, string) {
	cs, ok := ss.prepared[name]
	if !ok {
		return out, ss.unknownStatementName(name)
	}
	name = ss.srv.statementName(cs.server)
	if !st.HasPrepared(name) {
		out = ss.injectParse(out, st, cs)
	}
	return out, name
}

// foreignPrefix is put before an unknown client statement name that looks
// like one of pgone's server-side names, which a client must not reach:
// "pgone_" and base 36 never make a name with more than two underscores.
const foreignPrefix = "pgone_client_"

// unknownStatementName is the name a server gets for a statement name the
// client has not prepared: its own, unless it could be one of pgone's
// shared statements, which a client must neither run nor close. A pinned
// client's server is its own (SQL PREPARE may have made such a name).
func (ss *session) unknownStatementName(name string) string {
	if !ss.pinned && strings.HasPrefix(name, "pgone_") {
		return foreignPrefix + name
	}
	return name
}

// ensureUnnamedLocked makes the server's unnamed statement the client's
// before a Bind or Describe uses it: the client's own is parsed again, or,
// if it has none (or one too large to keep), the server's is closed so
// that the server answers 26000.
func (ss *session) ensureUnnamedLocked(out []byte, st *pool.SessionState) []byte {
	id := ss.ownerID()
	if st.UnnamedOwner == id {
		return out
	}
	st.UnnamedOwner = id
	if cs := ss.stmts.unnamed; cs != nil && cs.server != unnamedTooLarge {
		ss.expect.push(expectation{kind: pgmsg.Parse, injected: true, unnamed: true})
		return encodeParse(out, "", cs.query, cs.rest)
	}
	ss.expect.push(expectation{kind: pgmsg.Close, injected: true, unnamed: true})
	return encodeTarget(out, pgmsg.Close, pgmsg.TargetStatement, "")
}

// renderBindLocked renders a Bind (v decodes frame), naming the
// server-side statement.
func (ss *session) renderBindLocked(out []byte, st *pool.SessionState, frame []byte, v *frameView) []byte {
	pe, name, se := v.portalEnd, v.name, v.stmtEnd
	switch {
	case !v.ok:
		out = append(out, frame...)
		ss.expect.push(expectation{kind: pgmsg.Bind})
	case name == "":
		out = ss.ensureUnnamedLocked(out, st)
		out = append(out, frame...)
		ss.expect.push(expectation{kind: pgmsg.Bind})
		if u := ss.stmts.unnamed; u != nil {
			ss.markSettingsChangeLocked(u)
		}
	default:
		var stmt string
		out, stmt = ss.ensureNamedLocked(out, st, name)
		out = rewriteBind(out, frame, pe, se, stmt)
		cs := ss.prepared[name]
		ss.expect.push(expectation{kind: pgmsg.Bind, base: cs.server, client: name})
		ss.markSettingsChangeLocked(&cs)
	}
	return out
}

// markSettingsChangeLocked marks the session's settings for a snapshot
// when a bound statement changes them: a prepared RESET or SET acts when it
// runs, not when it is prepared.
func (ss *session) markSettingsChangeLocked(cs *clientStatement) {
	if ss.routeText(cs.query, cs.lex).ChangesSettings {
		ss.settingsDirty = true
	}
}

// renderDescribeLocked renders a Describe (v decodes frame) of a
// statement or portal.
func (ss *session) renderDescribeLocked(out []byte, st *pool.SessionState, frame []byte, v *frameView) []byte {
	name := v.name
	switch {
	case !v.ok || v.kind != pgmsg.TargetStatement:
		out = append(out, frame...)
		ss.expect.push(expectation{kind: pgmsg.Describe})
	case name == "":
		out = ss.ensureUnnamedLocked(out, st)
		out = append(out, frame...)
		ss.expect.push(expectation{kind: pgmsg.Describe})
	default:
		var stmt string
		out, stmt = ss.ensureNamedLocked(out, st, name)
		out = encodeTarget(out, pgmsg.Describe, pgmsg.TargetStatement, stmt)
		ss.expect.push(expectation{kind: pgmsg.Describe, shapeOf: name, client: name})
	}
	return out
}

// renderCloseLocked renders a Close (v decodes frame) of a statement or
// portal.
func (ss *session) renderCloseLocked(out []byte, st *pool.SessionState, frame []byte, v *frameView) []byte {
	name := v.name
	switch {
	case !v.ok || v.kind != pgmsg.TargetStatement:
		out = append(out, frame...)
		ss.expect.push(expectation{kind: pgmsg.Close})
	case name == "":
		prev := ss.stmts.unnamed
		ss.unnamedChangedLocked()
		ss.stmts.unnamed = nil
		st.UnnamedOwner = ss.ownerID() // the server's is closed too
		out = append(out, frame...)
		ss.expect.push(expectation{kind: pgmsg.Close, unnamed: true, unnamedPrev: prev})
	default:
		e := expectation{kind: pgmsg.Close, client: name}
		target := ss.unknownStatementName(name)
		if cs, known := ss.prepared[name]; known {
			delete(ss.prepared, name)
			delete(ss.shapes, name)
			e.closed = &cs
			target = ss.srv.statementName(cs.server)
			if st.HasPrepared(target) {
				st.ForgetPrepared(target)
				e.statement = target
			}
		}
		out = encodeTarget(out, pgmsg.Close, pgmsg.TargetStatement, target)
		ss.expect.push(e)
	}
	return out
}
