package proxy

import (
	"testing"
	"time"

	"github.com/pgone/pgone/router"
)

// TestStatementCommits: what a statement may commit, in a transaction
// block or not, and whether a block is open after it.
func TestStatementCommits(t *testing.T) {
	ss := &session{srv: &Server{router: router.NewRouter(100)}}
	tests := []struct {
		text          string
		inTx          bool
		commits, txAt bool
	}{
		{"SELECT * FROM t", false, false, false},
		{"SELECT * FROM t", true, false, true},
		{"SELECT nextval('s')", false, true, false},
		{"SELECT nextval('s')", true, false, true},
		{"INSERT INTO t VALUES (1)", false, true, false},
		{"INSERT INTO t VALUES (1)", true, false, true},
		{"update t set v = 1", false, true, false},
		{"BEGIN", false, false, true},
		{"start transaction", false, false, true},
		{"COMMIT", true, true, false},
		{"end", true, true, false},
		{"commit prepared 'g'", false, true, false},
		{"ROLLBACK PREPARED 'g'", false, true, false},
		{"ROLLBACK", true, false, false},
		{"rollback to savepoint a", true, false, true},
		{"SAVEPOINT a", true, false, true},
		{"PREPARE TRANSACTION 'g'", true, true, false},
		{"/* c */ COMMIT", true, true, false},
		{"BEGIN; INSERT INTO t VALUES (1); COMMIT", false, true, false},
		{"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", false, true, false},
		{"INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", true, false, true},
		{"CREATE TABLE x (a int)", false, true, false},
		{"CREATE TABLE x (a int)", true, false, true},
		{"CALL p()", false, true, false},
		{"", false, false, false},
		{"SELEC oops", false, false, false},
	}
	for _, tt := range tests {
		commits, txAt := ss.statementCommits(tt.text, tt.inTx)
		if commits != tt.commits || txAt != tt.txAt {
			t.Errorf("statementCommits(%q, inTx=%v) = %v, %v; want %v, %v", tt.text, tt.inTx, commits, txAt, tt.commits, tt.txAt)
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
