package proxy

import (
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/router"
)

// The plan stage of transaction mode. A request's plan holds the router's
// decision for each statement text the request runs or prepares, taken
// once: split routing (split.go), rendering (session effects and pins,
// render.go), the outcome of a lost server (lost.go) and the hooks all
// read it, so router.Route runs at most once per statement and request.
// Decisions are taken lazily, when a stage first asks: the fast lexical
// paths (router.PlainRead, router.NoSessionEffects) still spare the parse
// of texts with inlined literals. With hooks set, every statement is
// planned before the request is sent (planAll).
//
// The router sees the session as the split does (pg_proc volatility,
// configured functions, default read only and serializable), outside a
// transaction block: the decisions' session effects, tables, fingerprint
// and transaction control do not depend on it, and the split routes only
// outside transaction blocks. A request that waits for earlier pipelined
// replies before it can leave a replica (heldServerLocked) is planned
// again, since those replies may change the session.

// Decider is a Classifier that also gives the router's whole decision for
// a text in a session state. The default classifier is one; the plan uses
// it so that each statement is routed once. With a Classifier that is not a
// Decider, the plan asks the router directly and session effects come from
// the Classifier.
type Decider interface {
	Classifier
	Decide(text string, s router.Session) router.Decision
}

// plan is the plan of the request being served. It belongs to the session
// goroutine.
type plan struct {
	set     *replicaSet    // the split of the session's database, or nil
	session router.Session // the router's view of the session, once ready
	ready   bool
	stmts   []plannedStatement
	lexed   []lexedText // lexOf's memo
	// texts and names are the session's recent texts and statement names
	// (frameview.go); they outlive the request.
	texts, names textMemo
	routes       routeCounters // metrics.go; they outlive the request too
	// split is the split's verdict on the request (requestIsRead), once
	// splitDone.
	splitDone bool
	read      bool
	reason    router.Reason
	// cacheFence, when cacheFenced, is the replay LSN a replica needs to
	// run the request: a cache miss whose result may be stored only from
	// a replica that replayed its tables' last invalidation (cachereplica.go).
	cacheFence  pool.LSN
	cacheFenced bool
}

// plannedStatement is one statement text and the router's decision on it.
type plannedStatement struct {
	text string
	d    router.Decision
}

// begin starts the plan of a new request.
func (p *plan) begin(set *replicaSet) {
	clear(p.stmts) // drop the texts and the router's slices
	clear(p.lexed)
	*p = plan{set: set, stmts: p.stmts[:0], lexed: p.lexed[:0], texts: p.texts, names: p.names, routes: p.routes}
}

// lexed is what the router's lexical fast paths say of a statement text.
// Each scans the whole text (a microsecond or two for pgbench's SELECT),
// and the outcome (lost.go), the split and rendering all ask: a prepared
// statement keeps its answers from when it was prepared
// (clientStatement.lex), and a request's other texts are scanned once
// (lexOf).
type lexed struct {
	plainRead bool // router.PlainRead
	noEffects bool // router.NoSessionEffects
}

// lexText scans text with the router's fast paths.
func lexText(text string) lexed {
	return lexed{plainRead: router.PlainRead(text), noEffects: router.NoSessionEffects(text)}
}

// lexedText is an entry of the plan's lexOf memo.
type lexedText struct {
	text string
	lx   lexed
}

// maxLexed bounds lexOf's memo: a request of many texts (pipelined
// Queries) scans the later ones again rather than searching a long list.
const maxLexed = 8

// lexOf returns what the fast paths say of text, scanning it on its first
// use in the request.
func (ss *session) lexOf(text string) lexed {
	p := &ss.plan
	if lx, ok := p.texts.lex(text); ok {
		return lx
	}
	for i := range p.lexed {
		if p.lexed[i].text == text {
			return p.lexed[i].lx
		}
	}
	lx := lexText(text)
	if len(p.lexed) < maxLexed {
		p.lexed = append(p.lexed, lexedText{text: text, lx: lx})
	}
	return lx
}

// replan forgets the decisions taken: the session changed under the
// request.
func (p *plan) replan() { p.begin(p.set) }

// decide returns the router's decision on text, routing it on first use.
// Called by the session goroutine, with or without ss.mu.
func (ss *session) decide(text string) router.Decision {
	p := &ss.plan
	for i := range p.stmts {
		if p.stmts[i].text == text {
			return p.stmts[i].d
		}
	}
	if !p.ready {
		p.session, p.ready = ss.routerSession(p.set), true
	}
	var d router.Decision
	if dc, ok := ss.srv.classifier.(Decider); ok {
		d = dc.Decide(text, p.session)
	} else {
		d = ss.srv.router.Route(text, p.session)
		logUnparsed(ss.log, d, text)
	}
	p.stmts = append(p.stmts, plannedStatement{text: text, d: d})
	return d
}

// routerSession is the session as the router sees it for the plan. A
// database whose reads are not split still has its monitor's catalog
// (function volatility from pg_proc) when one runs: the result cache's
// verdicts need it as much as the split does.
func (ss *session) routerSession(set *replicaSet) router.Session {
	if set == nil {
		set = ss.monitoredSet()
	}
	if set == nil {
		return router.Session{}
	}
	snap := ss.srv.snap.Load()
	return router.Session{DefaultReadOnly: ss.defaultReadOnly, Functions: set.cat.Functions(),
		WriteFunctions: snap.writeFuncs, ReadFunctions: snap.readFuncs,
		DefaultSerializable: serializableSetting(ss.settingsKey) || set.cat.serializableDefault(ss.target.User)}
}

// planAll decides every statement req runs: its simple Query texts and the
// statements its Binds use. The hooks see them all.
func (ss *session) planAll(req *request) {
	var parsedBuf [4]parsedText
	parsed := parsedBuf[:0]
	for i := range req.views {
		v := &req.views[i]
		switch v.typ {
		case pgmsg.Query:
			ss.decide(v.text)
		case pgmsg.Parse:
			if v.ok {
				parsed = append(parsed, parsedText{name: v.name, text: v.text})
			}
		case pgmsg.Bind:
			if text, _, ok := ss.executedText(v, parsed); ok {
				ss.decide(text)
			}
		}
	}
}

// effectsOf is what a statement about to be sent does to the session: from
// the plan (the default classifier), or from a substituted Classifier. lx
// is lexText(text).
func (ss *session) effectsOf(text string, lx lexed) Classification {
	switch c := ss.srv.classifier.(type) {
	case nil:
		return Classification{}
	case Decider:
		if lx.noEffects {
			// Plain DML and queries, often with inlined literals that make
			// every text new to the decision cache: no parse needed.
			return Classification{}
		}
		return classificationOf(ss.decide(text))
	default:
		return c.Classify(text, ss.txStatus != pgmsg.TxIdle)
	}
}

// executedText returns the text of the statement a Bind runs and its
// lexText: one the request parses or the client prepared (boundText), or
// the client's unnamed statement of an earlier request, which
// renderLocked parses again where it runs. parsed holds no unknown
// entries.
func (ss *session) executedText(v *frameView, parsed []parsedText) (text string, lx lexed, ok bool) {
	if text, lx, ok = ss.boundText(v, parsed); ok || !v.ok || v.name != "" {
		return text, lx, ok
	}
	if u := ss.stmts.unnamed; u != nil && u.query != "" {
		return u.query, u.lex, true
	}
	return "", lexed{}, false
}
