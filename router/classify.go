package router

import "strings"

// stmtReason classifies a statement that is not a read by the name of its
// parse node ("InsertStmt", "CreateStmt"...), so this table needs no
// pg_query import.
func stmtReason(node string) Reason {
	switch node {
	case "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt", "TruncateStmt":
		return ReasonWrite
	case "VariableSetStmt", "VariableShowStmt", "DiscardStmt", "PrepareStmt",
		"ExecuteStmt", "DeallocateStmt", "ListenStmt", "UnlistenStmt",
		"NotifyStmt", "LockStmt", "CopyStmt", "CallStmt", "DoStmt",
		"VacuumStmt", "CheckPointStmt", "DeclareCursorStmt", "FetchStmt",
		"ClosePortalStmt", "LoadStmt", "ReindexStmt", "ClusterStmt",
		"ConstraintsSetStmt", "ExplainStmt":
		return ReasonUtility
	case "GrantStmt", "GrantRoleStmt", "RenameStmt", "CommentStmt",
		"SecLabelStmt", "IndexStmt", "ViewStmt", "RuleStmt", "DefineStmt",
		"CompositeTypeStmt", "ReassignOwnedStmt", "RefreshMatViewStmt",
		"ImportForeignSchemaStmt":
		return ReasonDDL
	}
	if strings.HasPrefix(node, "Create") || strings.HasPrefix(node, "Alter") ||
		strings.HasPrefix(node, "Drop") {
		return ReasonDDL
	}
	return ReasonNotRead
}

// timeLiterals are the date/time input strings resolved when the statement
// runs ('now'::timestamptz, date 'today'): such a result cannot be cached.
var timeLiterals = map[string]bool{
	"now": true, "today": true, "tomorrow": true, "yesterday": true,
}

// isTimeLiteral reports whether a string constant is one of timeLiterals.
func isTimeLiteral(s string) bool {
	if len(s) > 16 {
		return false
	}
	return timeLiterals[strings.ToLower(strings.TrimSpace(s))]
}

// isCatalog reports tables whose contents are server metadata: never cached.
func isCatalog(schema, rel string) bool {
	switch schema {
	case "pg_catalog", "information_schema", "pg_toast":
		return true
	case "":
		return strings.HasPrefix(rel, "pg_")
	}
	return false
}
