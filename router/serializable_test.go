package router

import "testing"

// TestRouteSerializable: a standby refuses serializable transactions
// ("cannot use serializable mode in a hot standby"), so whatever would go
// to a replica goes to the primary at that level: named by BEGIN, START
// TRANSACTION or SET TRANSACTION, or the session's default isolation.
// Other levels keep their replica.
func TestRouteSerializable(t *testing.T) {
	defSer := Session{DefaultSerializable: true}
	roSer := Session{InTransaction: true, TxReadOnly: true, DefaultSerializable: true}
	for _, c := range []struct {
		sql    string
		s      Session
		target Target
		reason Reason
	}{
		{"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", Session{}, TargetPrimary, ReasonSerializable},
		{"begin transaction isolation level serializable, read only, deferrable", Session{}, TargetPrimary, ReasonSerializable},
		{"START TRANSACTION READ ONLY ISOLATION LEVEL SERIALIZABLE", Session{}, TargetPrimary, ReasonSerializable},
		{"BEGIN ISOLATION LEVEL SERIALIZABLE", Session{DefaultReadOnly: true}, TargetPrimary, ReasonSerializable},
		{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", Session{InTransaction: true, TxReadOnly: true}, TargetPrimary, ReasonSerializable},
		{"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", Session{}, TargetReplica, ReasonTransactionControl},
		{"SET TRANSACTION ISOLATION LEVEL READ COMMITTED", Session{InTransaction: true, TxReadOnly: true}, TargetReplica, ReasonTransactionControl},
		{"SELECT 1", defSer, TargetPrimary, ReasonSerializable},
		{"SELECT 1", Session{}, TargetReplica, ReasonRead},
		{"BEGIN READ ONLY", defSer, TargetPrimary, ReasonSerializable},
		{"SELECT 1", roSer, TargetPrimary, ReasonSerializable},
		{"COMMIT", roSer, TargetPrimary, ReasonSerializable},
		{"INSERT INTO t VALUES (1)", defSer, TargetPrimary, ReasonWrite},
	} {
		d := NewRouter(100).Route(c.sql, c.s)
		if d.Target != c.target || d.Reason != c.reason {
			t.Errorf("Route(%q, %+v) = %s (%s), want %s (%s)", c.sql, c.s, d.Target, d.Reason, c.target, c.reason)
		}
	}
}
