package router

// Target is the kind of server a statement may run on. The zero value is
// TargetPrimary, so a zero Decision is always safe.
type Target uint8

const (
	// TargetPrimary is the read-write server.
	TargetPrimary Target = iota
	// TargetReplica is any healthy streaming replica; the proxy falls back to
	// the primary when none is usable.
	TargetReplica
)

func (t Target) String() string {
	switch t {
	case TargetPrimary:
		return "primary"
	case TargetReplica:
		return "replica"
	}
	return "unknown"
}

// Reason says why a Decision has its Target. The set is bounded and each
// String is a stable snake_case word, so it can label a metric.
type Reason uint8

const (
	// ReasonNotRead is the fallback for a statement kind the router does not
	// classify more precisely; it is the zero value.
	ReasonNotRead Reason = iota
	// ReasonRead: a SELECT/VALUES/TABLE/SHOW/EXPLAIN that is safe on a replica.
	ReasonRead
	// ReasonWrite: INSERT, UPDATE, DELETE, MERGE, TRUNCATE, COPY FROM.
	ReasonWrite
	// ReasonLockingClause: SELECT ... FOR UPDATE/NO KEY UPDATE/SHARE/KEY SHARE.
	ReasonLockingClause
	// ReasonVolatileFunction: a read calling a volatile or unknown function.
	ReasonVolatileFunction
	// ReasonWriteFunction: a read calling a function that writes or takes
	// locks (nextval, pg_advisory_lock, set_config, config write_functions...).
	ReasonWriteFunction
	// ReasonDataModifyingCTE: WITH x AS (INSERT/UPDATE/DELETE ...) at any depth.
	ReasonDataModifyingCTE
	// ReasonSelectInto: SELECT ... INTO new_table.
	ReasonSelectInto
	// ReasonMultiStatement: the text holds more than one statement.
	ReasonMultiStatement
	// ReasonTransaction: a read inside a read-write explicit transaction.
	ReasonTransaction
	// ReasonTransactionControl: BEGIN, COMMIT, ROLLBACK, SAVEPOINT, SET
	// TRANSACTION, PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED.
	ReasonTransactionControl
	// ReasonHintPrimary: a /* pgone:primary */ hint moved a read to the primary.
	ReasonHintPrimary
	// ReasonHintReplica: a /* pgone:replica */ hint moved a read that calls
	// volatile or unknown functions to a replica.
	ReasonHintReplica
	// ReasonParseError: PostgreSQL's parser rejects the text; the primary
	// returns its own error.
	ReasonParseError
	// ReasonEmpty: no statement at all (empty, blanks, comments, semicolons).
	ReasonEmpty
	// ReasonDDL: CREATE, ALTER, DROP, GRANT, COMMENT, REFRESH MATERIALIZED VIEW...
	ReasonDDL
	// ReasonUtility: SET, RESET, DISCARD, PREPARE, EXECUTE, DEALLOCATE, LISTEN,
	// NOTIFY, UNLISTEN, LOCK, COPY TO, CALL, DO, VACUUM, DECLARE, FETCH, LOAD...
	ReasonUtility
	// ReasonServerDependent: a read of per-server state (pg_stat_activity,
	// pg_locks, pg_backend_pid(), pg_is_in_recovery()...; list in
	// perserver.go): the answer depends on which server runs it.
	ReasonServerDependent
	// ReasonTooLong: the text is longer than pg_query is trusted with
	// (bound.go); it was not parsed. bound.go says what is then known.
	ReasonTooLong
	// ReasonTooComplex: the text nests deeper than pg_query is trusted with
	// (bound.go); it was not parsed.
	ReasonTooComplex
	// ReasonSerializable: a read or read-only transaction at the
	// serializable isolation level (BEGIN/SET TRANSACTION ISOLATION LEVEL
	// SERIALIZABLE, or Session.DefaultSerializable): a standby refuses it.
	ReasonSerializable

	// The reasons below are the proxy's, for a whole request routed by
	// the read/write split; Route never returns them. One enum keeps the
	// metric's reason label one bounded set.

	// ReasonNoUsableReplica: a read, but no replica is usable.
	ReasonNoUsableReplica
	// ReasonReadYourWrites: a read, but no replica has applied the writes
	// it must see (read_your_writes and its wider levels).
	ReasonReadYourWrites
	// ReasonReplicaUnreachable: a read, but the chosen replica could not
	// be reached.
	ReasonReplicaUnreachable
	// ReasonUnknownStatement: a Bind of a statement pgone does not know.
	ReasonUnknownStatement
	// ReasonFunctionCall: the FunctionCall message (no statement text).
	ReasonFunctionCall
	// ReasonCacheFill: a cacheable read the result cache missed, sent to
	// the primary so that its result can be stored (a replica's may be
	// older than the cache's last invalidation).
	ReasonCacheFill
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNotRead:            "not_read",
	ReasonRead:               "read",
	ReasonWrite:              "write",
	ReasonLockingClause:      "locking_clause",
	ReasonVolatileFunction:   "volatile_function",
	ReasonWriteFunction:      "write_function",
	ReasonDataModifyingCTE:   "data_modifying_cte",
	ReasonSelectInto:         "select_into",
	ReasonMultiStatement:     "multi_statement",
	ReasonTransaction:        "transaction",
	ReasonTransactionControl: "transaction_control",
	ReasonHintPrimary:        "hint_primary",
	ReasonHintReplica:        "hint_replica",
	ReasonParseError:         "parse_error",
	ReasonEmpty:              "empty",
	ReasonDDL:                "ddl",
	ReasonUtility:            "utility",
	ReasonServerDependent:    "server_dependent",
	ReasonTooLong:            "too_long",
	ReasonTooComplex:         "too_complex",
	ReasonSerializable:       "serializable",
	ReasonNoUsableReplica:    "no_usable_replica",
	ReasonReadYourWrites:     "read_your_writes",
	ReasonReplicaUnreachable: "replica_unreachable",
	ReasonUnknownStatement:   "unknown_statement",
	ReasonFunctionCall:       "function_call",
	ReasonCacheFill:          "cache_fill",
}

func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Pin is session state that lives on one server connection and cannot be
// replayed elsewhere: once a statement creates it, the client stays on its
// server until it disconnects.
type Pin uint8

const (
	// PinListen: LISTEN.
	PinListen Pin = iota
	// PinAdvisoryLock: session-level pg_advisory_lock*, pg_try_advisory_lock*
	// (the _xact_ variants end with the transaction and do not pin).
	PinAdvisoryLock
	// PinTempTable: CREATE TEMP TABLE/VIEW/SEQUENCE, CREATE TABLE AS / SELECT
	// INTO TEMP, any CREATE ... in the pg_temp schema (functions too).
	PinTempTable
	// PinHoldCursor: DECLARE ... WITH HOLD.
	PinHoldCursor
	// PinPrepare: SQL-level PREPARE.
	PinPrepare
	// PinSessionAuthorization: SET ROLE or SET SESSION AUTHORIZATION without LOCAL.
	PinSessionAuthorization
	// PinLoad: LOAD of a shared library.
	PinLoad
	numPins
)

var pinNames = [numPins]string{
	PinListen:               "listen",
	PinAdvisoryLock:         "advisory_lock",
	PinTempTable:            "temp_table",
	PinHoldCursor:           "hold_cursor",
	PinPrepare:              "prepare",
	PinSessionAuthorization: "session_authorization",
	PinLoad:                 "load",
}

func (p Pin) String() string {
	if p < numPins {
		return pinNames[p]
	}
	return "unknown"
}

// pinSet is a bit set of Pins, kept in the text analysis.
type pinSet uint16

func (s *pinSet) add(p Pin)     { *s |= 1 << p }
func (s pinSet) has(p Pin) bool { return s&(1<<p) != 0 }
func (s pinSet) list() []Pin {
	if s == 0 {
		return nil
	}
	var out []Pin
	for p := Pin(0); p < numPins; p++ {
		if s.has(p) {
			out = append(out, p)
		}
	}
	return out
}

// TxEffect is what a statement does to the session's transaction state.
type TxEffect uint8

const (
	// TxNone: not a transaction-control statement.
	TxNone TxEffect = iota
	// TxBegin: BEGIN, START TRANSACTION.
	TxBegin
	// TxCommit: COMMIT, END (with Decision.TxChain for AND CHAIN).
	TxCommit
	// TxRollback: ROLLBACK, ABORT (with Decision.TxChain for AND CHAIN).
	TxRollback
	// TxSavepoint: SAVEPOINT name.
	TxSavepoint
	// TxRelease: RELEASE [SAVEPOINT] name.
	TxRelease
	// TxRollbackTo: ROLLBACK TO [SAVEPOINT] name; the transaction stays open.
	TxRollbackTo
	// TxPrepareTransaction: PREPARE TRANSACTION 'gid'. Like COMMIT for the
	// session (it leaves the transaction block); the prepared transaction
	// then lives on in the server, independent of the session.
	TxPrepareTransaction
	// TxCommitPrepared: COMMIT PREPARED 'gid'; runs outside a transaction
	// block and leaves the session's transaction state unchanged.
	TxCommitPrepared
	// TxRollbackPrepared: ROLLBACK PREPARED 'gid'; like TxCommitPrepared.
	TxRollbackPrepared
	// TxSetTransaction: SET TRANSACTION ... (also SET TRANSACTION SNAPSHOT);
	// changes the current transaction only.
	TxSetTransaction
	numTxEffects
)

var txNames = [numTxEffects]string{
	TxNone:               "none",
	TxBegin:              "begin",
	TxCommit:             "commit",
	TxRollback:           "rollback",
	TxSavepoint:          "savepoint",
	TxRelease:            "release",
	TxRollbackTo:         "rollback_to",
	TxPrepareTransaction: "prepare_transaction",
	TxCommitPrepared:     "commit_prepared",
	TxRollbackPrepared:   "rollback_prepared",
	TxSetTransaction:     "set_transaction",
}

func (t TxEffect) String() string {
	if t < numTxEffects {
		return txNames[t]
	}
	return "unknown"
}

// Decision is everything the proxy needs to know about one query text in one
// session state. The slices are shared with the router's cache: callers must
// not modify them.
type Decision struct {
	Target Target
	Reason Reason
	// Statements is the number of statements in the text (0 when empty).
	Statements int
	// ReadTables and WriteTables name tables as the text writes them: "t",
	// "public.t", `My Table` (quotes removed); sorted and unique. CTE names
	// are not tables. Writes are INSERT/UPDATE/DELETE/MERGE targets, TRUNCATE,
	// COPY FROM, SELECT INTO, CREATE TABLE AS, data-modifying CTEs and DDL
	// targets (CREATE/ALTER/DROP TABLE/VIEW/SEQUENCE, indexes, triggers,
	// rules, policies, GRANT/REVOKE on tables). A table written is not also
	// listed as read.
	ReadTables  []string
	WriteTables []string
	// Fingerprint is pg_query's fingerprint of the whole text; 0 for parse
	// errors and empty texts.
	Fingerprint uint64
	// Cacheable: a single SELECT/VALUES/TABLE whose result depends only on
	// the tables read and the cache key: only immutable functions, no
	// CURRENT_* value functions or 'now'-like literals, no system catalogs
	// or pg_temp tables, no TABLESAMPLE without REPEATABLE, no hint to the
	// primary. The proxy must still not cache inside a transaction that has
	// written.
	Cacheable bool

	// Tx is the effect of the last transaction-control statement in the
	// text (TxNone if there is none).
	Tx TxEffect
	// TxReadOnly / TxReadWrite: that statement (BEGIN, START TRANSACTION,
	// SET TRANSACTION) named READ ONLY / READ WRITE explicitly.
	TxReadOnly  bool
	TxReadWrite bool
	// TxChain: COMMIT/ROLLBACK AND CHAIN, a new transaction starts at once.
	TxChain bool

	// ChangesSettings: after this text the session's settings may differ
	// (SET and RESET without LOCAL, SET SESSION CHARACTERISTICS, DISCARD ALL,
	// set_config() anywhere, DO, CALL). The proxy snapshots the settings.
	ChangesSettings bool
	// DiscardAll: DISCARD ALL. It also sets DeallocateAll and Unlisten,
	// which it implies.
	DiscardAll bool
	// DeallocateAll: DEALLOCATE [PREPARE] ALL (or DISCARD ALL).
	DeallocateAll bool
	// Pins lists the session state the text creates that a pool cannot
	// move; sorted, unique, nil when none.
	Pins []Pin
	// Unlisten: UNLISTEN of a channel or * (or DISCARD ALL).
	Unlisten bool
}
