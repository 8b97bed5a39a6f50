package proxy

import (
	"encoding/binary"
	"strings"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/internal/pgmsg"
	"github.com/pgone/pgone/internal/wire"
	"github.com/pgone/pgone/router"
)

// What the result cache may answer and what a request writes, decided from
// the request's frames and its plan. Every test here errs towards not
// caching and towards invalidating more: a stale read, or one role seeing
// another's rows, is the worst bug pgone can have.
//
// Only reads of tables named by a cache rule, reads a fingerprint rule
// names, or reads carrying the hint /* pgone:cache */, are cached: the
// operator vouches for those tables or statements where the catalog
// cannot (triggers and foreign-key cascades writing other tables). The
// catalog (cachecatalog.go) then refuses row security,
// temporary, foreign and system relations and resolves views and
// inheritance. System catalogs are never cached (the router refuses them
// too).

const (
	hintNoCache = "pgone:nocache"
	hintCache   = "pgone:cache"
)

// cacheRules is the compiled rules section: relation name to TTL, and
// fingerprint to TTL.
type cacheRules struct {
	tables       map[string]time.Duration
	fingerprints map[uint64]time.Duration
}

// compileRules compiles validated rules; where two rules name one table or
// statement the shorter positive TTL wins.
func compileRules(rules []cache.Rule) cacheRules {
	c := cacheRules{tables: map[string]time.Duration{}, fingerprints: map[uint64]time.Duration{}}
	for _, r := range rules {
		if r.Fingerprint != "" {
			if fp, err := cache.ParseFingerprint(r.Fingerprint); err == nil {
				c.fingerprints[fp] = shorterTTL(c.fingerprints, fp, r.TTL)
			}
			continue
		}
		name := relationName(r.Table)
		c.tables[name] = shorterTTL(c.tables, name, r.TTL)
	}
	return c
}

// shorterTTL is the TTL m should keep for k given another rule's ttl: the
// shorter positive one (0 is default_ttl, so any positive TTL is shorter).
func shorterTTL[K comparable](m map[K]time.Duration, k K, ttl time.Duration) time.Duration {
	old, ok := m[k]
	if !ok || (ttl > 0 && (old == 0 || ttl < old)) {
		return ttl
	}
	return old
}

// relationName is the name a table's version is kept under: its last
// dotted part, lower case. Two spellings of one table ("public.T", "t")
// share a version; two tables of one name in different schemas share it
// too, which only invalidates more.
func relationName(table string) string {
	if i := strings.LastIndexByte(table, '.'); i >= 0 {
		table = table[i+1:]
	}
	return strings.ToLower(table)
}

// isSystemTable reports a catalog or information_schema relation.
func isSystemTable(table string) bool {
	t := strings.ToLower(table)
	return strings.HasPrefix(t, "pg_") || strings.HasPrefix(t, "pg_catalog.") ||
		strings.HasPrefix(t, "information_schema.")
}

// cacheHint reads the cache hints of a statement text: nocache anywhere
// (also inside a literal: refusing is always safe), and pgone:cache with
// an optional ttl=DURATION.
func cacheHint(text string) (nocache, cacheIt bool, ttl time.Duration) {
	if !containsFoldASCII(text, "pgone:") {
		return false, false, 0 // most reads: no lower-case copy of the text
	}
	lower := strings.ToLower(text)
	if strings.Contains(lower, hintNoCache) {
		return true, false, 0
	}
	i := strings.Index(lower, hintCache)
	if i < 0 {
		return false, false, 0
	}
	rest := lower[i+len(hintCache):]
	if end := strings.Index(rest, "*/"); end >= 0 {
		rest = rest[:end]
	} else if end := strings.IndexByte(rest, '\n'); end >= 0 {
		rest = rest[:end]
	}
	for _, w := range strings.Fields(rest) {
		if v, ok := strings.CutPrefix(w, "ttl="); ok {
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				ttl = d
			}
		}
	}
	return false, true, ttl
}

// containsFoldASCII reports whether s holds lowerSub (lower-case ASCII)
// in any letter case, without copying s: the check cacheHint makes on
// every cacheable read before it lower-cases the text.
func containsFoldASCII(s, lowerSub string) bool {
	for i := 0; i+len(lowerSub) <= len(s); i++ {
		j := 0
		for j < len(lowerSub) && lowerASCII(s[i+j]) == lowerSub[j] {
			j++
		}
		if j == len(lowerSub) {
			return true
		}
	}
	return false
}

func lowerASCII(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// cacheableRead decides whether the one statement of a request may be
// served from or stored in the cache, and for how long. It requires the
// router's verdict (a single SELECT/VALUES/TABLE calling only immutable
// functions, no catalogs, no pg_temp, no locking clause, no hint to the
// primary) and then a hint, a fingerprint rule naming the statement, or
// table rules naming every table it reads. A read the fingerprint rule
// admits still takes the shorter TTL of a table rule naming a table it
// reads. Admitted (the tuner's admission, mode auto) counts as a
// fingerprint rule without a TTL of its own.
func (r cacheRules) cacheableRead(st StatementPlan, admitted bool) (ttl time.Duration, ok bool) {
	if !st.Cacheable || st.Reason != router.ReasonRead || st.Fingerprint == 0 {
		return 0, false
	}
	nocache, hinted, hintTTL := cacheHint(st.Text)
	if nocache {
		return 0, false
	}
	for _, t := range st.ReadTables {
		if isSystemTable(t) {
			return 0, false
		}
	}
	if hinted {
		return hintTTL, true
	}
	ttl, byFingerprint := r.fingerprints[st.Fingerprint]
	byFingerprint = byFingerprint || admitted
	if len(st.ReadTables) == 0 {
		return ttl, byFingerprint
	}
	for _, t := range st.ReadTables {
		tt, named := r.tables[relationName(t)]
		if !named && !byFingerprint {
			return 0, false
		}
		if tt > 0 && (ttl == 0 || tt < ttl) {
			ttl = tt
		}
	}
	return ttl, true
}

// requestShape is how a request may be answered from the cache: simple (one
// Query), extended (Parse? Bind Describe? Execute Sync of one unnamed
// portal, run to completion), or none.
const (
	shapeNone cache.Shape = iota
	shapeSimple
	shapeExtended
)

// cacheShape checks that req is one the cache can replay byte for byte and
// that leaves no state behind on the server or in pgone that a hit would
// skip: no named Parse (pgone records named statements), no Close, no
// named portal, no row limit on Execute (a suspended portal), one Sync at
// the end.
func cacheShape(req *request) cache.Shape {
	n := len(req.frames)
	if n == 1 && req.frame(0)[0] == pgmsg.Query {
		return shapeSimple
	}
	if n < 3 || req.syncs != 1 || req.frame(n - 1)[0] != pgmsg.Sync {
		return shapeNone
	}
	binds, executes := 0, 0
	for i := 0; i < n-1; i++ {
		frame := req.frame(i)
		body := wire.Body(frame)
		switch frame[0] {
		case pgmsg.Parse:
			if binds > 0 || len(body) == 0 || body[0] != 0 { // named, or after the Bind
				return shapeNone
			}
		case pgmsg.Bind:
			if len(body) == 0 || body[0] != 0 || binds > 0 { // a named portal
				return shapeNone
			}
			binds++
		case pgmsg.Describe:
		case pgmsg.Execute:
			// Execute: portal name (must be empty), then the row limit.
			if binds != 1 || executes > 0 || len(body) != 5 || body[0] != 0 || binary.BigEndian.Uint32(body[1:]) != 0 {
				return shapeNone
			}
			executes++
		default:
			return shapeNone
		}
	}
	if binds != 1 || executes != 1 {
		return shapeNone
	}
	return shapeExtended
}

// appendRequestKey appends what identifies req's reply besides the
// session: the request's frames as sent (statement text, parameter types,
// values and formats, result formats, Describes) and, for a Bind of a
// statement prepared earlier, that statement's text and parameter types.
func (ss *session) appendRequestKey(dst []byte, req *request) ([]byte, bool) {
	parsedHere := false
	for i := range req.frames {
		frame := req.frame(i)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(frame)))
		dst = append(dst, frame...)
		switch frame[0] {
		case pgmsg.Parse:
			parsedHere = true
		case pgmsg.Bind:
			_, name, _, ok := bindStatement(frame)
			if !ok {
				return dst, false
			}
			if name == "" {
				if !parsedHere {
					return dst, false // an unnamed statement from an earlier request
				}
				continue
			}
			cs, known := ss.prepared[name]
			if !known {
				return dst, false
			}
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(cs.query)))
			dst = append(dst, cs.query...)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(cs.rest)))
			dst = append(dst, cs.rest...)
		}
	}
	return dst, true
}

// writeOf is what a statement may write, marked before it is sent: tables
// for the DML the router attributes, all (the database's epoch) for
// anything that may write what the plan cannot name: DDL, TRUNCATE
// (CASCADE), DO, CALL, volatile functions, unparsed texts, COMMIT
// PREPARED.
func writeOf(st StatementPlan) (tables []string, all bool) {
	if st.Tx == router.TxCommitPrepared {
		// The writes of a PREPARE TRANSACTION become visible here, not at
		// the PREPARE: which tables they were is not known any more.
		return nil, true
	}
	switch st.Reason {
	case router.ReasonRead, router.ReasonHintReplica, router.ReasonHintPrimary, router.ReasonServerDependent,
		router.ReasonEmpty, router.ReasonTransactionControl, router.ReasonSerializable,
		router.ReasonLockingClause, router.ReasonParseError:
		if len(st.WriteTables) == 0 {
			return nil, false
		}
		return st.WriteTables, false
	case router.ReasonWrite, router.ReasonDataModifyingCTE, router.ReasonSelectInto:
		if len(st.WriteTables) == 0 || firstWord(st.Text) == "truncate" {
			return nil, true
		}
		return st.WriteTables, false
	case router.ReasonUtility:
		switch firstWord(st.Text) {
		case "set", "reset", "show", "discard", "listen", "unlisten", "deallocate":
			return st.WriteTables, false
		}
	}
	return st.WriteTables, true
}

// mayCommit says a statement (reason, tx: the router's decision) may
// commit, also while leaving a transaction open: COMMIT [AND CHAIN] (or
// END), or a text holding several statements with transaction control
// among them, or one the router could not take apart. Its commit is due
// at its own ReadyForQuery, whatever the transaction status says.
func mayCommit(reason router.Reason, tx router.TxEffect) bool {
	switch reason {
	case router.ReasonTooLong, router.ReasonTooComplex:
		return true
	case router.ReasonMultiStatement:
		return tx != router.TxNone
	}
	return tx == router.TxCommit
}

// firstWord is the first keyword of a text, lower case, after blanks and
// comments.
func firstWord(text string) string {
	for {
		text = strings.TrimLeft(text, " \t\r\n\f(")
		switch {
		case strings.HasPrefix(text, "--"):
			if i := strings.IndexByte(text, '\n'); i >= 0 {
				text = text[i+1:]
				continue
			}
			return ""
		case strings.HasPrefix(text, "/*"):
			if i := strings.Index(text, "*/"); i >= 0 {
				text = text[i+2:]
				continue
			}
			return ""
		}
		end := strings.IndexFunc(text, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '_')
		})
		if end < 0 {
			end = len(text)
		}
		return strings.ToLower(text[:end])
	}
}

// replayable reports whether reply frames can be stored as an entry: only
// the messages a read's replies are made of, ending with one
// ReadyForQuery of status idle. A notice, a parameter change, an error or
// a suspended portal is not the same bytes next time.
func replayable(f ReplyFrames) bool {
	if !f.Complete() {
		return false
	}
	ready := 0
	ok := true
	for typ, body := range f.All() {
		switch typ {
		case pgmsg.ParseComplete, pgmsg.BindComplete, pgmsg.RowDescription, pgmsg.DataRow,
			pgmsg.CommandComplete, pgmsg.NoData, pgmsg.ParameterDescription, pgmsg.EmptyQueryResponse:
			if ready > 0 {
				ok = false
			}
		case pgmsg.ReadyForQuery:
			ready++
			ok = ok && len(body) == 1 && body[0] == pgmsg.TxIdle
		default:
			ok = false
		}
	}
	return ok && ready == 1
}
