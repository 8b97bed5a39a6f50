package router

// Functions reports a function's volatility as pg_proc.provolatile: 'i'
// immutable, 's' stable, 'v' volatile. name is the function name as the
// statement resolves it: "lower" or "myschema.f" (unquoted identifiers folded
// to lower case, quoted ones kept). An implementation built from pg_proc
// should index each function under its bare and its schema-qualified name
// and, for overloads, report the most volatile one. ok is false if the name
// is unknown.
type Functions interface {
	Volatility(name string) (v byte, ok bool)
}

// Session is the part of a client session's state that changes a Decision.
// The proxy's session goroutine owns it; Route only reads it.
type Session struct {
	// InTransaction: the client is inside an explicit transaction block.
	InTransaction bool
	// TxReadOnly: the current transaction is read only (BEGIN READ ONLY,
	// SET TRANSACTION READ ONLY).
	TxReadOnly bool
	// TxReadWrite: the current transaction was made READ WRITE explicitly;
	// it overrides DefaultReadOnly.
	TxReadWrite bool
	// DefaultReadOnly: default_transaction_read_only is on, so transactions
	// without an explicit mode are read only.
	DefaultReadOnly bool
	// DefaultSerializable: default_transaction_isolation is serializable
	// (SET, startup options, role or database default). A standby refuses
	// serializable transactions, so nothing goes to a replica.
	DefaultSerializable bool
	// Functions gives volatility from pg_proc; nil means only the router's
	// built-in list is used. Names it does not know fall back to that list;
	// names nobody knows are treated as volatile.
	Functions Functions
	// WriteFunctions (config) force the primary for any statement calling
	// them. ReadFunctions (config) mark functions safe on a replica (but not
	// cacheable). Keys are matched against the name as written and against
	// the name without its schema. WriteFunctions wins over ReadFunctions;
	// neither can make a built-in write function (nextval, setval, advisory
	// locks, set_config, pg_notify, lo_*...) safe for a replica.
	WriteFunctions map[string]bool
	ReadFunctions  map[string]bool
}

// readOnlyTx reports whether the current transaction cannot write.
func (s *Session) readOnlyTx() bool {
	return s.TxReadOnly || (s.DefaultReadOnly && !s.TxReadWrite)
}
