package proxy_test

import (
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Generated interleaving scripts: a seeded generator draws requests for
// two or three clients from small pieces (Parse, Bind, Describe, Execute,
// Close of named and unnamed statements and portals, errors, Flush,
// DEALLOCATE, DISCARD ALL, transactions) and hands the server from client
// to client between them. A family limits what the generator may draw, so
// that a family free of one known bug can pass while that bug is open.

// ilText is a statement text the generator draws from.
type ilText struct {
	sql      string
	params   int
	intParam bool // parameter is an int; "0" makes ilDivSQL fail
}

var ilTexts = []ilText{
	{sql: ilTextSQL, params: 1},
	{sql: `select $1::text || '/two' as w, 2 as two`, params: 1},
	{sql: `select 42 as n`},
	{sql: ilSeries},
	{sql: ilDivSQL, params: 1, intParam: true},
}

const ilDiv = 4 // index of ilDivSQL in ilTexts

// ilFamily is what a family of generated scripts may contain. The zero
// value is the cleanest: every request valid except one failing statement
// at the end of a pipeline.
type ilFamily struct {
	name string
	// unnamedAcross lets a request use an unnamed statement parsed by an
	// earlier request of the same client.
	unnamedAcross bool
	// reparse lets a client Parse a name it already has (42P05).
	reparse bool
	// deallocateName lets a client send DEALLOCATE name.
	deallocateName bool
	// errAnywhere puts failing messages anywhere in a pipeline, also in
	// front of Flush-ended parts, and lets Binds and Executes miss
	// their statement or portal.
	errAnywhere bool
	clients     int
	cases       int
	// knownBug skips the family's cases that fail today (by seed), with
	// the reason.
	knownBug map[int64]string
}

// ilGenClient is the generator's model of one client's session, exact
// as long as the family's requests fail only where the model expects.
type ilGenClient struct {
	unnamed int            // text index of the unnamed statement, -1 for none
	named   map[string]int // statement name to text index
}

type ilGen struct {
	fam     ilFamily
	rng     *rand.Rand
	clients []ilGenClient
	seq     int
	reqs    []ilReq
	// Per request being built:
	failed    bool // a message in it will fail: the rest is skipped
	aborted   bool // the client's transaction block has failed
	reqParsed bool // it parsed the unnamed statement
	portals   map[string]int
}

func newILGen(fam ilFamily, seed int64) *ilGen {
	g := &ilGen{fam: fam, rng: rand.New(rand.NewSource(seed)), clients: make([]ilGenClient, fam.clients)}
	for i := range g.clients {
		g.clients[i] = ilGenClient{unnamed: -1, named: map[string]int{}}
	}
	return g
}

// script draws units, each leaving its client idle, switching clients
// between most of them.
func (g *ilGen) script() []ilReq {
	units := 6 + g.rng.Intn(8)
	c := 0
	for u := 0; u < units; u++ {
		if u > 0 && g.rng.Intn(10) < 7 {
			c = (c + 1 + g.rng.Intn(g.fam.clients-1)) % g.fam.clients
		}
		switch n := g.rng.Intn(100); {
		case n < 40:
			g.extended(c)
		case n < 60:
			g.flushed(c)
		case n < 78:
			g.query(c, true)
		default:
			g.transaction(c)
		}
	}
	return g.reqs
}

func (g *ilGen) emit(c int, msgs []pgproto3.FrontendMessage) {
	g.reqs = append(g.reqs, ilReq{client: c, msgs: msgs})
}

// startRequest resets the per-request state. The implicit transaction of
// a Sync-ended request closes its portals; one inside BEGIN keeps them.
func (g *ilGen) startRequest(keepPortals bool) {
	g.failed, g.reqParsed = g.aborted, false
	if !keepPortals || g.portals == nil {
		g.portals = map[string]int{}
	}
}

// extended is one request of 1-4 operations and a Sync.
func (g *ilGen) extended(c int) {
	g.startRequest(false)
	g.emit(c, g.syncSegment(c, 1+g.rng.Intn(4)))
}

func (g *ilGen) syncSegment(c, ops int) []pgproto3.FrontendMessage {
	var msgs []pgproto3.FrontendMessage
	for i := 0; i < ops; i++ {
		msgs = append(msgs, g.op(c, i == ops-1)...)
	}
	return append(msgs, ilSync)
}

// flushed is 1-3 Flush-ended parts and a Sync-ended tail, one pipeline.
func (g *ilGen) flushed(c int) {
	g.startRequest(false)
	for parts := 1 + g.rng.Intn(3); parts > 0; parts-- {
		var msgs []pgproto3.FrontendMessage
		for ops := 1 + g.rng.Intn(2); ops > 0; ops-- {
			msgs = append(msgs, g.op(c, g.fam.errAnywhere)...)
		}
		g.emit(c, append(msgs, ilFlush))
	}
	var msgs []pgproto3.FrontendMessage
	for ops := g.rng.Intn(3); ops > 0; ops-- {
		msgs = append(msgs, g.op(c, ops == 1)...)
	}
	g.emit(c, append(msgs, ilSync))
}

// query is one simple Query: DEALLOCATE, DISCARD ALL, a select, an error.
func (g *ilGen) query(c int, discard bool) {
	g.startRequest(false)
	cl := &g.clients[c]
	choices := []string{`DEALLOCATE ALL`, `select 'simple'`, `select 1/0`}
	if discard {
		choices = append(choices, `DISCARD ALL`)
	}
	if g.fam.deallocateName {
		for _, name := range []string{"s1", "s2"} {
			if _, ok := cl.named[name]; ok || g.fam.errAnywhere {
				choices = append(choices, "DEALLOCATE "+name, "DEALLOCATE PREPARE "+name)
			}
		}
	}
	sql := choices[g.rng.Intn(len(choices))]
	g.emit(c, []pgproto3.FrontendMessage{ilQuery(sql)})
	cl.unnamed = -1 // a simple Query replaces the unnamed statement
	if g.failed || sql == `select 1/0` {
		g.failed = true
		return
	}
	switch sql {
	case `DEALLOCATE ALL`, `DISCARD ALL`:
		clear(cl.named)
	case `DEALLOCATE s1`, `DEALLOCATE PREPARE s1`:
		delete(cl.named, "s1")
	case `DEALLOCATE s2`, `DEALLOCATE PREPARE s2`:
		delete(cl.named, "s2")
	}
}

// transaction is BEGIN, 1-3 requests (a portal kept across them among
// them), then COMMIT or ROLLBACK.
func (g *ilGen) transaction(c int) {
	g.emit(c, []pgproto3.FrontendMessage{ilQuery(`BEGIN`)})
	g.clients[c].unnamed = -1
	g.portals = map[string]int{}
	for n := 1 + g.rng.Intn(3); n > 0; n-- {
		switch g.rng.Intn(4) {
		case 0:
			// A named portal that outlives its request.
			g.startRequest(true)
			g.emit(c, []pgproto3.FrontendMessage{ilClose('P', "p1"), ilParse("", ilSeries), ilBind("p1", ""), ilExec("p1", 1), ilSync})
			if !g.failed {
				g.clients[c].unnamed = 3
				g.portals["p1"] = 3
			}
			g.startRequest(true)
			g.emit(c, []pgproto3.FrontendMessage{ilExec("p1", 1), ilSync})
		case 1:
			g.query(c, false)
		default:
			g.startRequest(true)
			g.emit(c, g.syncSegment(c, 1+g.rng.Intn(3)))
		}
		g.aborted = g.failed
	}
	g.aborted = false
	end := `COMMIT`
	if g.rng.Intn(3) == 0 {
		end = `ROLLBACK`
	}
	g.emit(c, []pgproto3.FrontendMessage{ilQuery(end)})
	g.clients[c].unnamed = -1
	g.portals = map[string]int{}
}

// op draws one operation; mayFail allows the failing statement (always
// allowed in errAnywhere families). It keeps the model: what the server
// skips after a failure does not change it.
func (g *ilGen) op(c int, mayFail bool) []pgproto3.FrontendMessage {
	if g.fam.errAnywhere {
		mayFail = true
	}
	for {
		var msgs []pgproto3.FrontendMessage
		switch n := g.rng.Intn(100); {
		case n < 25:
			msgs = g.parse(c)
		case n < 60:
			msgs = g.bindExecute(c, false)
		case n < 70:
			msgs = g.describe(c)
		case n < 82:
			msgs = g.closeOne(c)
		case n < 95:
			if mayFail {
				msgs = g.bindExecute(c, true)
			}
		default:
			if g.fam.errAnywhere {
				msgs = []pgproto3.FrontendMessage{ilExec([]string{"", "p1", "nosuch"}[g.rng.Intn(3)], 0)}
				g.failed = true
			}
		}
		if msgs != nil {
			return msgs
		}
	}
}

// usable lists the statements the client may name in this request: "" for
// the unnamed one, then its named ones.
func (g *ilGen) usable(c int) []string {
	cl := &g.clients[c]
	var names []string
	if cl.unnamed >= 0 && (g.fam.unnamedAcross || g.reqParsed) {
		names = append(names, "")
	}
	for _, name := range []string{"s1", "s2"} {
		if _, ok := cl.named[name]; ok {
			names = append(names, name)
		}
	}
	if g.fam.errAnywhere {
		names = append(names, "", "s1", "s9")
	}
	return names
}

func (g *ilGen) textOf(c int, name string) (int, bool) {
	cl := &g.clients[c]
	if name == "" {
		return cl.unnamed, cl.unnamed >= 0
	}
	t, ok := cl.named[name]
	return t, ok
}

func (g *ilGen) parse(c int) []pgproto3.FrontendMessage {
	cl := &g.clients[c]
	text := g.rng.Intn(len(ilTexts))
	name := []string{"", "", "s1", "s2"}[g.rng.Intn(4)]
	var msgs []pgproto3.FrontendMessage
	if _, exists := cl.named[name]; exists && !g.fam.reparse {
		msgs = append(msgs, ilClose('S', name))
		if !g.failed {
			delete(cl.named, name)
		}
	}
	msgs = append(msgs, ilParse(name, ilTexts[text].sql))
	if g.failed {
		return msgs
	}
	if name == "" {
		cl.unnamed, g.reqParsed = text, true
	} else if _, exists := cl.named[name]; exists {
		g.failed = true // 42P05
	} else {
		cl.named[name] = text
	}
	return msgs
}

// bindExecute binds a statement the client has (a failing one when fail)
// and executes the portal, in steps of two rows now and then.
func (g *ilGen) bindExecute(c int, fail bool) []pgproto3.FrontendMessage {
	var msgs []pgproto3.FrontendMessage
	stmt := ""
	if fail {
		// Parse the failing statement unnamed, or reuse a named one of it.
		stmt = ""
		for _, name := range []string{"s1", "s2"} {
			if t, ok := g.clients[c].named[name]; ok && t == ilDiv && g.rng.Intn(2) == 0 {
				stmt = name
			}
		}
		if stmt == "" {
			msgs = append(msgs, ilParse("", ilDivSQL))
			if !g.failed {
				g.clients[c].unnamed, g.reqParsed = ilDiv, true
			}
		}
	} else {
		names := g.usable(c)
		if len(names) == 0 {
			return nil
		}
		stmt = names[g.rng.Intn(len(names))]
	}
	text, known := g.textOf(c, stmt)
	params := 1
	if known {
		params = ilTexts[text].params
	}
	if g.fam.errAnywhere && g.rng.Intn(10) == 0 {
		params++ // 08P01
	}
	var vals []string
	for i := 0; i < params; i++ {
		g.seq++
		switch {
		case fail:
			vals = append(vals, "0")
		case known && ilTexts[text].intParam:
			vals = append(vals, fmt.Sprint(1+g.seq%3))
		default:
			vals = append(vals, fmt.Sprintf("%s%d", string(rune('a'+c)), g.seq))
		}
	}
	portal := ""
	if g.rng.Intn(3) == 0 {
		portal = "p1"
	}
	if _, open := g.portals[portal]; open && portal != "" && (!g.fam.errAnywhere || g.rng.Intn(2) == 0) {
		msgs = append(msgs, ilClose('P', portal))
		if !g.failed {
			delete(g.portals, portal)
		}
	}
	if _, open := g.portals[portal]; open && portal != "" {
		g.failed = true // 42P03
	}
	msgs = append(msgs, ilBind(portal, stmt, vals...))
	if g.rng.Intn(3) == 0 {
		msgs = append(msgs, ilDescribe('P', portal))
	}
	if known && text == 3 && g.rng.Intn(2) == 0 {
		msgs = append(msgs, ilExec(portal, 2), ilExec(portal, 2))
	} else {
		msgs = append(msgs, ilExec(portal, 0))
	}
	if !known || fail || params != ilTexts[text].params {
		g.failed = true
	}
	if !g.failed {
		g.portals[portal] = text
	}
	return msgs
}

func (g *ilGen) describe(c int) []pgproto3.FrontendMessage {
	names := g.usable(c)
	if len(names) == 0 {
		return nil
	}
	name := names[g.rng.Intn(len(names))]
	if _, ok := g.textOf(c, name); !ok {
		g.failed = true
	}
	return []pgproto3.FrontendMessage{ilDescribe('S', name)}
}

// closeOne closes a statement or a portal; closing what does not exist
// succeeds in PostgreSQL.
func (g *ilGen) closeOne(c int) []pgproto3.FrontendMessage {
	cl := &g.clients[c]
	if g.rng.Intn(4) == 0 {
		portal := []string{"", "p1"}[g.rng.Intn(2)]
		if !g.failed {
			delete(g.portals, portal)
		}
		return []pgproto3.FrontendMessage{ilClose('P', portal)}
	}
	names := g.usable(c)
	if len(names) == 0 {
		return nil
	}
	name := names[g.rng.Intn(len(names))]
	if !g.failed {
		if name == "" {
			cl.unnamed = -1
		} else {
			delete(cl.named, name)
		}
	}
	return []pgproto3.FrontendMessage{ilClose('S', name)}
}

// ilFamilies are the generated families. Their cases failing today are
// listed in knownBug by seed.
func ilFamilies() []ilFamily {
	return []ilFamily{
		{name: "named", clients: 2, cases: 80},
		{name: "named 3 clients", clients: 3, cases: 30},
		{name: "unnamed across requests", clients: 2, cases: 50, unnamedAcross: true,
			knownBug: map[int64]string{20: ilBugShapeAfterRePa}},
		{name: "re-Parse and DEALLOCATE name", clients: 2, cases: 50, reparse: true, deallocateName: true},
		{name: "everything", clients: 2, cases: 60, unnamedAcross: true, reparse: true, deallocateName: true, errAnywhere: true},
		{name: "everything 3 clients", clients: 3, cases: 30, unnamedAcross: true, reparse: true, deallocateName: true, errAnywhere: true},
	}
}

// TestTxInterleaveGenerated runs the generated interleaving scripts.
func TestTxInterleaveGenerated(t *testing.T) {
	t.Parallel()
	directs := newILDirectConns(t)
	for _, fam := range ilFamilies() {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			var all []ilReq
			for seed := int64(1); seed <= int64(fam.cases); seed++ {
				tc := ilCase{
					name:     fmt.Sprintf("seed %d", seed),
					clients:  fam.clients,
					reqs:     newILGen(fam, seed).script(),
					knownBug: fam.knownBug[seed],
				}
				all = append(all, tc.reqs...)
				t.Run(tc.name, func(t *testing.T) { runInterleaving(t, tc, directs) })
			}
			checkILCoverage(t, fam, all)
		})
	}
}

// checkILCoverage checks that a family's scripts, all seeds together,
// contain every piece the family is meant to combine.
func checkILCoverage(t *testing.T, fam ilFamily, reqs []ilReq) {
	t.Helper()
	seen := map[string]bool{}
	parsedUnnamed := map[int]bool{} // client parsed the unnamed statement in an earlier request
	for _, r := range reqs {
		thisReq := false
		for _, m := range r.msgs {
			switch m := m.(type) {
			case *pgproto3.Parse:
				if m.Name == "" {
					thisReq = true
					seen["Parse unnamed"] = true
				} else {
					seen["Parse named"] = true
				}
			case *pgproto3.Bind:
				if m.PreparedStatement == "" && !thisReq && parsedUnnamed[r.client] {
					seen["Bind of an unnamed statement from an earlier request"] = true
				}
				if m.DestinationPortal != "" {
					seen["Bind named portal"] = true
				}
				if len(m.Parameters) == 1 && string(m.Parameters[0]) == "0" {
					seen["failing Bind or Execute"] = true
				}
			case *pgproto3.Describe:
				seen["Describe "+string(m.ObjectType)] = true
			case *pgproto3.Execute:
				if m.MaxRows > 0 {
					seen["Execute with a row limit"] = true
				}
			case *pgproto3.Close:
				seen["Close "+string(m.ObjectType)] = true
			case *pgproto3.Flush:
				seen["Flush"] = true
			case *pgproto3.Query:
				seen["Query "+strings.TrimRight(strings.SplitN(m.String, " s", 2)[0], " ")] = true
			}
		}
		if thisReq {
			parsedUnnamed[r.client] = true
		}
	}
	want := []string{"Parse unnamed", "Parse named", "Bind named portal", "failing Bind or Execute", "Describe S", "Describe P",
		"Execute with a row limit", "Close S", "Close P", "Flush", "Query DEALLOCATE ALL", "Query DISCARD ALL", "Query BEGIN", "Query COMMIT", "Query ROLLBACK"}
	if fam.unnamedAcross {
		want = append(want, "Bind of an unnamed statement from an earlier request")
	}
	if fam.deallocateName {
		want = append(want, "Query DEALLOCATE", "Query DEALLOCATE PREPARE")
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("family %q never generates %s", fam.name, w)
		}
	}
}
