package router

// This file, parse_options.go and parse_normalize.go are the package's only
// importers of pg_query_go: it parses a text once and reduces the tree to
// an analysis.

import (
	pg_query "github.com/pganalyze/pg_query_go/v5"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// cursorOptHold is CURSOR_OPT_HOLD from PostgreSQL's parsenodes.h.
const cursorOptHold = 0x20

// analyze parses text and walks every statement's tree once.
func analyze(text string) *analysis { return analyzeConsts(text, nil) }

// analyzeConsts is analyze that also appends to consts, when not nil, the
// location of every A_Const node: where the grammar saw a constant
// (normalizable in router.go checks the literals normalizedKey replaced
// against them).
func analyzeConsts(text string, consts *[]int32) *analysis {
	a := &analysis{}
	tree, err := pg_query.Parse(text)
	if err != nil {
		a.parseError = true
		return a
	}
	a.statements = len(tree.Stmts)
	if a.statements == 0 {
		return a
	}
	if fp, err := pg_query.FingerprintToUInt64(text); err == nil {
		a.fingerprint = fp
	}
	if mayHaveHint(text) {
		a.hintPrimary, a.hintReplica = scanHints(text)
	}
	w := walker{reads: map[string]bool{}, writes: map[string]bool{}, funcSeen: map[string]bool{}, consts: consts}
	for _, raw := range tree.Stmts {
		w.statement(a, raw.GetStmt())
	}
	a.funcs = w.funcs
	a.uncacheable = w.uncacheable
	a.serverView = w.serverView
	a.pins = w.pins.list()
	a.changesSettings, a.unlisten = w.changesSettings, w.unlisten
	a.deallocateAll, a.discardAll = w.deallocateAll, w.discardAll
	a.writeTables = sortedKeys(w.writes, nil)
	a.readTables = sortedKeys(w.reads, w.writes)
	return a
}

// scanHints finds hint comments with PostgreSQL's own lexer, so a hint
// inside a string literal does not count.
func scanHints(text string) (primary, replica bool) {
	res, err := pg_query.Scan(text)
	if err != nil {
		return false, false
	}
	for _, t := range res.GetTokens() {
		if t.Token != pg_query.Token_C_COMMENT && t.Token != pg_query.Token_SQL_COMMENT {
			continue
		}
		start, end := int(t.Start), int(t.End)
		if start < 0 || end > len(text) || start > end {
			continue
		}
		p, r := commentHints(text[start:end])
		primary, replica = primary || p, replica || r
	}
	return primary, replica
}

// walker visits every message of a tree through protobuf reflection, so an
// expression nested anywhere (a FuncCall in a JOIN condition, a sublink in
// a VALUES list) is seen; a switch picks out the node types that matter.
type walker struct {
	// deferred: the subtree is stored or planned, not executed (view and
	// function bodies, PREPARE, EXPLAIN without ANALYZE, DDL expressions):
	// its functions, locks and write targets do not count; its tables are
	// reported as reads.
	deferred bool
	// ctes are the CTE names in scope; a bare RangeVar matching one is not
	// a table.
	ctes []string
	// writeTargets are RangeVars a statement writes, marked before the
	// walk reaches them.
	writeTargets map[*pg_query.RangeVar]bool

	reads, writes map[string]bool
	funcs         []funcRef
	funcSeen      map[string]bool
	uncacheable   bool
	// serverView: a server-dependent view is read (perserver.go),
	// outside deferred subtrees.
	serverView bool
	pins       pinSet
	// consts, when not nil, receives the location of every A_Const.
	consts *[]int32

	changesSettings bool
	unlisten        bool
	deallocateAll   bool
	discardAll      bool
	// Per statement, reset by statement.
	locking, into, dataModifyingCTE, dml bool
}

// statement analyzes one top-level statement and records its class.
func (w *walker) statement(a *analysis, stmt *pg_query.Node) {
	inner := nodeMessage(stmt)
	if inner == nil {
		return
	}
	w.locking, w.into, w.dataModifyingCTE, w.dml = false, false, false, false
	w.deferred = false
	w.ctes = w.ctes[:0]

	name := string(inner.Descriptor().Name())
	a.read, a.reason, a.txControl, a.selectQuery = false, stmtReason(name), false, false
	switch name {
	case "SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt":
		a.exprStatement = true
	default:
		a.exprStatement = false
	}

	// EXPLAIN ANALYZE runs its statement: classify that one instead.
	exec := inner
	if ex, ok := inner.Interface().(*pg_query.ExplainStmt); ok {
		on, valued := explainAnalyze(ex)
		a.literalValue = a.literalValue || valued
		if on {
			if q := nodeMessage(ex.GetQuery()); q != nil {
				exec = q
				name = string(q.Descriptor().Name())
				a.reason = stmtReason(name)
			}
		} else {
			a.read, a.reason = true, ReasonRead
		}
	}

	switch n := exec.Interface().(type) {
	case *pg_query.TransactionStmt:
		a.txControl, a.literalValue = true, true // txMode reads constants
		a.tx, a.txChain = txEffect(n.GetKind()), n.GetChain()
		a.txReadOnly, a.txReadWrite = txMode(n.GetOptions())
		a.txSerializable = txSerializable(n.GetOptions())
	case *pg_query.VariableSetStmt:
		if n.GetKind() == pg_query.VariableSetKind_VAR_SET_MULTI &&
			(n.GetName() == "TRANSACTION" || n.GetName() == "TRANSACTION SNAPSHOT") {
			a.txControl, a.literalValue = true, true
			a.tx, a.txChain = TxSetTransaction, false
			a.txReadOnly, a.txReadWrite = txMode(n.GetArgs())
			a.txSerializable = txSerializable(n.GetArgs())
		}
	}

	w.walk(inner)

	switch n := exec.Interface().(type) {
	case *pg_query.SelectStmt:
		a.selectQuery = exec == inner
		switch {
		case w.dataModifyingCTE || w.dml:
			a.reason = ReasonDataModifyingCTE
		case w.into:
			a.reason = ReasonSelectInto
		case w.locking:
			a.reason = ReasonLockingClause
		default:
			a.read, a.reason = true, ReasonRead
		}
	case *pg_query.VariableShowStmt:
		a.read, a.reason = true, ReasonRead
	case *pg_query.CopyStmt:
		if n.GetIsFrom() || w.dml { // w.dml: COPY (DELETE ... RETURNING) TO
			a.reason = ReasonWrite
		}
	}
}

// walk visits m and all messages below it.
func (w *walker) walk(m protoreflect.Message) {
	scope, deferred := len(w.ctes), w.deferred
	skipWith := w.enter(m)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		if skipWith && fd.Name() == "with_clause" {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				w.walk(l.Get(i).Message())
			}
		} else if !fd.IsMap() {
			w.walk(v.Message())
		}
		return true
	})
	w.ctes = w.ctes[:scope]
	w.deferred = deferred
}

// enter handles one node before its children are walked. It returns true
// when it has already walked the node's with_clause.
func (w *walker) enter(m protoreflect.Message) (skipWith bool) {
	switch n := m.Interface().(type) {
	case *pg_query.RangeVar:
		w.table(n)
	case *pg_query.FuncCall:
		if !w.deferred {
			w.call(n)
		}
	case *pg_query.A_Const:
		if w.consts != nil {
			*w.consts = append(*w.consts, n.GetLocation())
		}
	case *pg_query.SQLValueFunction:
		w.uncacheable = true
	case *pg_query.TypeCast:
		if s := n.GetArg().GetAConst().GetSval(); s != nil && isTimeLiteral(s.GetSval()) {
			w.uncacheable = true
		}
	case *pg_query.RangeTableSample:
		if n.GetRepeatable() == nil {
			w.uncacheable = true
		}
	case *pg_query.LockingClause:
		if !w.deferred {
			w.locking = true
		}
	case *pg_query.CommonTableExpr:
		if !w.deferred && isDML(n.GetCtequery()) {
			w.dataModifyingCTE = true
		}

	case *pg_query.SelectStmt:
		if n.GetIntoClause() != nil && !w.deferred {
			w.into = true
		}
		return w.with(n.GetWithClause())
	case *pg_query.InsertStmt:
		w.dmlTarget(n.GetRelation())
		return w.with(n.GetWithClause())
	case *pg_query.UpdateStmt:
		w.dmlTarget(n.GetRelation())
		return w.with(n.GetWithClause())
	case *pg_query.DeleteStmt:
		w.dmlTarget(n.GetRelation())
		return w.with(n.GetWithClause())
	case *pg_query.MergeStmt:
		w.dmlTarget(n.GetRelation())
		return w.with(n.GetWithClause())
	case *pg_query.IntoClause:
		w.createTarget(n.GetRel(), n.GetOnCommit())

	case *pg_query.ExplainStmt:
		if on, _ := explainAnalyze(n); !on {
			w.deferred = true
		}
	case *pg_query.PrepareStmt:
		if !w.deferred {
			w.pins.add(PinPrepare)
		}
		w.deferred = true
	case *pg_query.CopyStmt:
		if n.GetIsFrom() {
			w.target(n.GetRelation())
		}
	case *pg_query.TruncateStmt:
		for _, r := range n.GetRelations() {
			w.target(r.GetRangeVar())
		}
	case *pg_query.DeclareCursorStmt:
		if !w.deferred && n.GetOptions()&cursorOptHold != 0 {
			w.pins.add(PinHoldCursor)
		}
	case *pg_query.VariableSetStmt:
		w.set(n)
	case *pg_query.ListenStmt:
		if !w.deferred {
			w.pins.add(PinListen)
		}
	case *pg_query.LoadStmt:
		if !w.deferred {
			w.pins.add(PinLoad)
		}
	case *pg_query.DoStmt, *pg_query.CallStmt:
		if !w.deferred {
			w.changesSettings = true
		}
	case *pg_query.UnlistenStmt:
		if !w.deferred {
			w.unlisten = true
		}
	case *pg_query.DeallocateStmt:
		if !w.deferred && n.GetName() == "" {
			w.deallocateAll = true
		}
	case *pg_query.DiscardStmt:
		if !w.deferred && n.GetTarget() == pg_query.DiscardMode_DISCARD_ALL {
			w.discardAll, w.deallocateAll, w.unlisten, w.changesSettings = true, true, true, true
		}
	default:
		w.ddl(m)
	}
	return false
}

// ddl marks the targets of DDL statements as written and defers the rest of
// their subtree (defaults, view queries, function bodies run later if ever).
func (w *walker) ddl(m protoreflect.Message) {
	switch n := m.Interface().(type) {
	case *pg_query.CreateStmt:
		w.createTarget(n.GetRelation(), n.GetOncommit())
	case *pg_query.ViewStmt:
		w.createTarget(n.GetView(), 0)
	case *pg_query.CreateSeqStmt:
		w.createTarget(n.GetSequence(), 0)
	case *pg_query.CreateTableAsStmt:
		return // its IntoClause is a target and its query runs now
	case *pg_query.AlterSeqStmt:
		w.target(n.GetSequence())
	case *pg_query.AlterTableStmt:
		w.target(n.GetRelation())
	case *pg_query.IndexStmt:
		w.target(n.GetRelation())
	case *pg_query.RenameStmt:
		w.target(n.GetRelation())
	case *pg_query.AlterObjectSchemaStmt:
		w.target(n.GetRelation())
	case *pg_query.RefreshMatViewStmt:
		w.target(n.GetRelation())
	case *pg_query.CreateTrigStmt:
		w.target(n.GetRelation())
	case *pg_query.RuleStmt:
		w.target(n.GetRelation())
	case *pg_query.CreatePolicyStmt:
		w.target(n.GetTable())
	case *pg_query.AlterPolicyStmt:
		w.target(n.GetTable())
	case *pg_query.GrantStmt:
		if n.GetTargtype() == pg_query.GrantTargetType_ACL_TARGET_OBJECT && isRelationType(n.GetObjtype()) {
			for _, o := range n.GetObjects() {
				w.target(o.GetRangeVar())
			}
		}
	case *pg_query.DropStmt:
		if !w.deferred && isRelationType(n.GetRemoveType()) {
			for _, o := range n.GetObjects() {
				if name := qualifiedName(o.GetList().GetItems()); name != "" {
					w.writes[name] = true
				}
			}
		}
	case *pg_query.CreateFunctionStmt:
		w.tempObject(n.GetFuncname())
	case *pg_query.CreateRangeStmt:
		w.tempObject(n.GetTypeName())
	case *pg_query.CreateEnumStmt:
		w.tempObject(n.GetTypeName())
	case *pg_query.CreateDomainStmt:
		w.tempObject(n.GetDomainname())
	case *pg_query.DefineStmt:
		w.tempObject(n.GetDefnames())
	case *pg_query.CompositeTypeStmt:
		if rv := n.GetTypevar(); rv != nil && !w.deferred && rv.GetSchemaname() == "pg_temp" {
			w.pins.add(PinTempTable)
		}
	default:
		if stmtReason(string(m.Descriptor().Name())) != ReasonDDL {
			return
		}
	}
	w.deferred = true
}

// tempObject pins an object created in the session's temporary schema
// (pg_temp.name): a function, type, domain, aggregate or operator there
// lives on one server only.
func (w *walker) tempObject(names []*pg_query.Node) {
	if !w.deferred && len(names) > 1 && names[0].GetString_().GetSval() == "pg_temp" {
		w.pins.add(PinTempTable)
	}
}

// with walks a WITH clause ahead of its statement so the CTE names are in
// scope for the statement body: all at once for WITH RECURSIVE, one after
// the other otherwise (a CTE sees only earlier ones).
func (w *walker) with(wc *pg_query.WithClause) bool {
	if wc == nil {
		return false
	}
	if wc.GetRecursive() {
		for _, c := range wc.GetCtes() {
			w.ctes = append(w.ctes, c.GetCommonTableExpr().GetCtename())
		}
	}
	for _, c := range wc.GetCtes() {
		w.walk(c.ProtoReflect())
		if !wc.GetRecursive() {
			w.ctes = append(w.ctes, c.GetCommonTableExpr().GetCtename())
		}
	}
	return true
}

// dmlTarget marks the target of an INSERT/UPDATE/DELETE/MERGE.
func (w *walker) dmlTarget(rv *pg_query.RangeVar) {
	if w.deferred {
		return
	}
	w.dml = true
	w.target(rv)
}

// createTarget marks a created relation and pins temporary ones, except
// ON COMMIT DROP tables, which do not outlive their transaction.
func (w *walker) createTarget(rv *pg_query.RangeVar, onCommit pg_query.OnCommitAction) {
	if rv == nil || w.deferred {
		return
	}
	temp := rv.GetRelpersistence() == "t" || rv.GetSchemaname() == "pg_temp"
	if temp && onCommit != pg_query.OnCommitAction_ONCOMMIT_DROP {
		w.pins.add(PinTempTable)
	}
	w.target(rv)
}

// target marks rv as written; walk records it when it reaches it.
func (w *walker) target(rv *pg_query.RangeVar) {
	if rv == nil || w.deferred {
		return
	}
	if w.writeTargets == nil {
		w.writeTargets = map[*pg_query.RangeVar]bool{}
	}
	w.writeTargets[rv] = true
}

// table records a RangeVar as read or written. A bare name in CTE scope
// is a CTE reference, except as a write target (those are always tables).
func (w *walker) table(rv *pg_query.RangeVar) {
	schema, rel := rv.GetSchemaname(), rv.GetRelname()
	name := rel
	if schema != "" {
		name = schema + "." + rel
	}
	if c := rv.GetCatalogname(); c != "" {
		name = c + "." + name
	}
	if w.writeTargets[rv] {
		w.writes[name] = true
	} else {
		if schema == "" && rv.GetCatalogname() == "" {
			for _, c := range w.ctes {
				if c == rel {
					return
				}
			}
		}
		w.reads[name] = true
	}
	if isCatalog(schema, rel) || schema == "pg_temp" {
		w.uncacheable = true
	}
	if !w.deferred && isServerView(schema, rel) {
		w.serverView = true
	}
}

// call records a function call and the session state it changes.
func (w *walker) call(fc *pg_query.FuncCall) {
	parts := make([]string, 0, 2)
	for _, p := range fc.GetFuncname() {
		parts = append(parts, p.GetString_().GetSval())
	}
	if len(parts) == 0 {
		return
	}
	f := newFuncRef(parts)
	switch {
	case sessionAdvisoryLocks[f.builtin]:
		w.pins.add(PinAdvisoryLock)
	case f.builtin == "set_config":
		w.changesSettings = true
	}
	if !w.funcSeen[f.name] {
		w.funcSeen[f.name] = true
		w.funcs = append(w.funcs, f)
	}
}

// set handles SET and RESET; SET TRANSACTION is transaction control and
// SET LOCAL ends with the transaction, so neither changes settings.
func (w *walker) set(n *pg_query.VariableSetStmt) {
	if w.deferred || n.GetIsLocal() {
		return
	}
	kind := n.GetKind()
	if kind == pg_query.VariableSetKind_VAR_SET_MULTI && n.GetName() != "SESSION CHARACTERISTICS" {
		return
	}
	w.changesSettings = true
	switch kind {
	case pg_query.VariableSetKind_VAR_SET_VALUE, pg_query.VariableSetKind_VAR_SET_DEFAULT,
		pg_query.VariableSetKind_VAR_SET_CURRENT:
		if n.GetName() == "role" || n.GetName() == "session_authorization" {
			w.pins.add(PinSessionAuthorization)
		}
	}
}

// nodeMessage unwraps a Node (a oneof) into the message it holds.
func nodeMessage(n *pg_query.Node) protoreflect.Message {
	if n == nil {
		return nil
	}
	m := n.ProtoReflect()
	fd := m.WhichOneof(m.Descriptor().Oneofs().Get(0))
	if fd == nil {
		return nil
	}
	return m.Get(fd).Message()
}

func isDML(n *pg_query.Node) bool {
	return n.GetInsertStmt() != nil || n.GetUpdateStmt() != nil ||
		n.GetDeleteStmt() != nil || n.GetMergeStmt() != nil
}

func isRelationType(t pg_query.ObjectType) bool {
	switch t {
	case pg_query.ObjectType_OBJECT_TABLE, pg_query.ObjectType_OBJECT_VIEW,
		pg_query.ObjectType_OBJECT_MATVIEW, pg_query.ObjectType_OBJECT_SEQUENCE,
		pg_query.ObjectType_OBJECT_FOREIGN_TABLE:
		return true
	}
	return false
}

// qualifiedName joins a List of String nodes ("s", "t") into "s.t".
func qualifiedName(items []*pg_query.Node) string {
	name := ""
	for _, it := range items {
		s := it.GetString_()
		if s == nil {
			return ""
		}
		if name != "" {
			name += "."
		}
		name += s.GetSval()
	}
	return name
}

// treeDepth parses text and returns the depth of its parse tree in
// protobuf messages, the recursion pg_query's output stage goes through.
// Tests use it to check the lexical estimate in bound.go against the real
// tree; ok is false when text does not parse.
func treeDepth(text string) (depth int, ok bool) {
	tree, err := pg_query.Parse(text)
	if err != nil {
		return 0, false
	}
	return messageDepth(tree.ProtoReflect()), true
}

func messageDepth(m protoreflect.Message) int {
	deepest := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				deepest = max(deepest, messageDepth(l.Get(i).Message()))
			}
		} else {
			deepest = max(deepest, messageDepth(v.Message()))
		}
		return true
	})
	return deepest + 1
}
