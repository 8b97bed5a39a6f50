package router

import pg_query "github.com/pganalyze/pg_query_go/v5"

// Options of statements as PostgreSQL reads them: EXPLAIN's ANALYZE, the
// booleans of DefElem lists, and the transaction modes and isolation level
// of BEGIN, START TRANSACTION and SET TRANSACTION.

// explainAnalyze reports whether EXPLAIN runs its statement: ANALYZE given
// without a value or with a true one. valued reports that a value was
// read (EXPLAIN (ANALYZE 0) and (ANALYZE 1) differ only in a literal).
func explainAnalyze(ex *pg_query.ExplainStmt) (on, valued bool) {
	for _, o := range ex.GetOptions() {
		d := o.GetDefElem()
		if d.GetDefname() != "analyze" {
			continue
		}
		on = defElemBool(d.GetArg())
		valued = valued || d.GetArg() != nil
	}
	return on, valued
}

// defElemBool reads an option value the way PostgreSQL's defGetBoolean
// does; no value means true.
func defElemBool(arg *pg_query.Node) bool {
	if arg == nil {
		return true
	}
	if i := arg.GetInteger(); i != nil {
		return i.GetIval() != 0
	}
	if b := arg.GetBoolean(); b != nil {
		return b.GetBoolval()
	}
	if s := arg.GetString_(); s != nil {
		switch s.GetSval() {
		case "false", "off", "0", "no", "f", "n":
			return false
		}
		return true
	}
	return true
}

// txMode reads transaction_read_only from BEGIN/SET TRANSACTION options.
func txMode(opts []*pg_query.Node) (readOnly, readWrite bool) {
	for _, o := range opts {
		d := o.GetDefElem()
		if d.GetDefname() != "transaction_read_only" {
			continue
		}
		if d.GetArg().GetAConst().GetIval().GetIval() != 0 {
			readOnly, readWrite = true, false
		} else {
			readOnly, readWrite = false, true
		}
	}
	return readOnly, readWrite
}

// txSerializable reports whether BEGIN/SET TRANSACTION options name the
// serializable isolation level, which a standby refuses, read only or not.
func txSerializable(opts []*pg_query.Node) bool {
	for _, o := range opts {
		d := o.GetDefElem()
		if d.GetDefname() == "transaction_isolation" &&
			d.GetArg().GetAConst().GetSval().GetSval() == "serializable" { // the grammar spells it so
			return true
		}
	}
	return false
}

func txEffect(k pg_query.TransactionStmtKind) TxEffect {
	switch k {
	case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
		return TxBegin
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
		return TxCommit
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
		return TxRollback
	case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
		return TxSavepoint
	case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
		return TxRelease
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
		return TxRollbackTo
	case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
		return TxPrepareTransaction
	case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED:
		return TxCommitPrepared
	case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
		return TxRollbackPrepared
	}
	return TxNone
}
