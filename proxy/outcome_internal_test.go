package proxy

import (
	"testing"
	"time"

	"github.com/pgone/pgone/router"
)

// TestStatementOutcome: what a statement may leave behind, in a
// transaction block or not, and whether a block is open after it.
func TestStatementOutcome(t *testing.T) {
	ss := &session{srv: &Server{router: router.NewRouter(100)}}
	const none, write, commit = outcomeNone, outcomeWrite, outcomeCommit
	tests := []struct {
		text string
		inTx bool
		want outcome
		txAt bool
	}{
		{"SELECT * FROM t", false, none, false},
		{"SELECT * FROM t", true, none, true},
		{"SELECT nextval('s')", false, write, false},
		{"SELECT nextval('s')", true, none, true},
		{"INSERT INTO t VALUES (1)", false, write, false},
		{"INSERT INTO t VALUES (1)", true, none, true},
		{"update t set v = 1", false, write, false},
		{"BEGIN", false, none, true},
		{"start transaction", false, none, true},
		{"COMMIT", true, commit, false},
		{"end", true, commit, false},
		{"commit prepared 'g'", false, commit, false},
		{"ROLLBACK PREPARED 'g'", false, commit, false},
		{"ROLLBACK", true, none, false},
		{"rollback to savepoint a", true, none, true},
		{"SAVEPOINT a", true, none, true},
		{"PREPARE TRANSACTION 'g'", true, commit, false},
		{"/* c */ COMMIT", true, commit, false},
		{"BEGIN; INSERT INTO t VALUES (1); COMMIT", false, commit, false},
		{"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", false, write, false},
		{"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", true, none, true},
		{"CREATE TABLE x (a int)", false, write, false},
		{"CREATE TABLE x (a int)", true, none, true},
		{"CALL p()", false, write, false},
		{"", false, none, false},
		{"SELEC oops", false, none, false},
	}
	for _, tt := range tests {
		got, txAt := ss.statementOutcome(tt.text, lexText(tt.text), tt.inTx)
		if got != tt.want || txAt != tt.txAt {
			t.Errorf("statementOutcome(%q, inTx=%v) = %v, %v; want %v, %v", tt.text, tt.inTx, got, txAt, tt.want, tt.txAt)
		}
	}
}

// TestQueryTimeoutFor: the user's query_timeout wins over the database's
// (or the wildcard entry's), which wins over limits.query_timeout; 0 keeps
// the next one.
func TestQueryTimeoutFor(t *testing.T) {
	cfg := &Config{
		Limits: Limits{QueryTimeout: time.Second},
		Databases: map[string]Database{
			"slow": {QueryTimeout: time.Minute},
			"app":  {},
			"*":    {QueryTimeout: 2 * time.Second},
		},
		Users: map[string]User{"batch": {QueryTimeout: time.Hour}, "web": {}},
	}
	tests := []struct {
		database, user string
		want           time.Duration
	}{
		{"slow", "batch", time.Hour},
		{"slow", "web", time.Minute},
		{"app", "web", time.Second},
		{"other", "web", 2 * time.Second},
		{"other", "batch", time.Hour},
	}
	for _, tt := range tests {
		if got := queryTimeoutFor(cfg, tt.database, tt.user); got != tt.want {
			t.Errorf("queryTimeoutFor(%s, %s) = %s; want %s", tt.database, tt.user, got, tt.want)
		}
	}
}
