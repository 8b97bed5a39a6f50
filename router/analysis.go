package router

import "sort"

// analysis is what the router learns from a query text alone: it is computed
// once per distinct text (parse.go) and cached. Everything session-dependent
// is derived from it per call in decide.
type analysis struct {
	statements  int
	parseError  bool
	fingerprint uint64
	hintPrimary bool
	hintReplica bool

	// The next fields describe the statement when statements == 1.

	// read: structurally a read (SELECT/VALUES/TABLE/SHOW/EXPLAIN without
	// locking, INTO, data-modifying CTEs); functions are checked per session.
	read bool
	// reason is why the statement is not a read (when !read and !txControl).
	reason Reason
	// txControl: BEGIN, COMMIT, SET TRANSACTION...: routed by decideTx.
	txControl bool
	// selectQuery: a SELECT/VALUES/TABLE, the only statements worth caching.
	selectQuery bool
	// uncacheable: time-dependent nodes, catalogs, pg_temp, TABLESAMPLE.
	uncacheable bool
	// serverView: reads a per-server view (perserver.go).
	serverView bool
	// funcs are the functions the text executes, unique.
	funcs []funcRef

	readTables  []string
	writeTables []string
	pins        []Pin

	tx              TxEffect
	txReadOnly      bool
	txReadWrite     bool
	txSerializable  bool // BEGIN/SET TRANSACTION named ISOLATION LEVEL SERIALIZABLE
	txChain         bool
	changesSettings bool
	discardAll      bool
	deallocateAll   bool
	unlisten        bool

	// exprStatement: a single SELECT, VALUES, TABLE, INSERT, UPDATE,
	// DELETE or MERGE, whose literals the grammar keeps as constants in
	// expressions (utility statements take theirs into option lists and
	// fields). Only these may be shared under a normalised key.
	exprStatement bool
	// literalValue: the analysis read a constant's value (EXPLAIN's
	// ANALYZE option, transaction modes), so texts differing only in
	// literals may differ here. The 'now'-like strings of time casts are
	// read too but do not count: normalizedKey keeps them verbatim.
	literalValue bool
}

// decide turns a text's analysis into a Decision for one session state.
// It allocates nothing: the slices are the analysis' own.
func decide(a *analysis, s *Session) Decision {
	d := Decision{
		Target:          TargetPrimary,
		Statements:      a.statements,
		ReadTables:      a.readTables,
		WriteTables:     a.writeTables,
		Fingerprint:     a.fingerprint,
		Tx:              a.tx,
		TxReadOnly:      a.txReadOnly,
		TxReadWrite:     a.txReadWrite,
		TxChain:         a.txChain,
		ChangesSettings: a.changesSettings,
		DiscardAll:      a.discardAll,
		DeallocateAll:   a.deallocateAll,
		Pins:            a.pins,
		Unlisten:        a.unlisten,
	}
	switch {
	case a.parseError:
		d.Reason = ReasonParseError
	case a.statements == 0:
		d.Reason = ReasonEmpty
	case a.statements > 1:
		d.Reason = ReasonMultiStatement
	case a.txControl:
		d.Reason = ReasonTransactionControl
		d.Target = decideTx(a, s)
	case !a.read:
		d.Reason = a.reason
	default:
		d.Reason, d.Cacheable = decideRead(a, s)
		if d.Reason == ReasonRead || d.Reason == ReasonHintReplica {
			d.Target = TargetReplica
			if s.InTransaction && !s.readOnlyTx() {
				d.Target, d.Reason = TargetPrimary, ReasonTransaction
			}
		}
	}
	if d.Target == TargetReplica && (a.txSerializable || s.DefaultSerializable) {
		d.Target, d.Reason = TargetPrimary, ReasonSerializable
	}
	if a.hintPrimary {
		d.Cacheable = false
		if d.Target == TargetReplica {
			d.Target, d.Reason = TargetPrimary, ReasonHintPrimary
		}
	}
	return d
}

// decideRead checks the functions a read calls. A replica hint overrides
// volatile, unknown and server-dependent functions, never write functions.
// A server-dependent built-in (perserver.go) only reads, whatever its
// volatility: it makes the read server_dependent, not volatile_function,
// so that a read whose other calls are stable stays known as a read.
func decideRead(a *analysis, s *Session) (Reason, bool) {
	worst := volImmutable
	server := a.serverView
	for _, f := range a.funcs {
		c := classify(f, s)
		if c != volWrite && isServerCall(f, s) {
			server = true
			continue
		}
		worst = max(worst, c)
	}
	switch {
	case worst == volWrite:
		return ReasonWriteFunction, false
	case worst == volVolatile || server:
		switch {
		case a.hintReplica:
			return ReasonHintReplica, false
		case worst == volVolatile:
			return ReasonVolatileFunction, false
		}
		return ReasonServerDependent, false
	}
	return ReasonRead, a.selectQuery && !a.uncacheable && worst == volImmutable
}

// decideTx routes transaction control: a read-only transaction may live on a
// replica, so its BEGIN and the statements that end or adjust it can go
// there too. Two-phase commit always needs the primary.
func decideTx(a *analysis, s *Session) Target {
	switch a.tx {
	case TxBegin:
		if a.txReadOnly || (!a.txReadWrite && s.DefaultReadOnly) {
			return TargetReplica
		}
	case TxCommit, TxRollback, TxSavepoint, TxRelease, TxRollbackTo, TxSetTransaction:
		if s.InTransaction && s.readOnlyTx() && !a.txReadWrite {
			return TargetReplica
		}
	}
	return TargetPrimary
}

// sortedKeys returns the keys of set that are not in minus, sorted.
func sortedKeys(set, minus map[string]bool) []string {
	var out []string
	for k := range set {
		if !minus[k] {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
