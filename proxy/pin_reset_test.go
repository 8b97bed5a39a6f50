package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
)

// pinRole is a role app may SET ROLE to, for the pinned-reset test.
const pinRole = "txpin_role"

func createPinRole(t *testing.T) {
	t.Helper()
	ctx := testCtx(t)
	for _, sql := range []string{
		`DO $$BEGIN CREATE ROLE ` + pinRole + `; EXCEPTION WHEN duplicate_object THEN NULL; END$$`,
		`GRANT ` + pinRole + ` TO ` + appUser,
	} {
		if err := cluster.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTxModePinnedServerIsResetForTheNextClient: a pinned client's server
// goes back to the pool only after ROLLBACK (if needed) and DISCARD ALL, so
// the next client on it sees none of the pinned client's temp tables,
// session advisory locks, LISTEN channels or SET ROLE; and a pinned client
// that leaves inside a transaction does not cost the pool its server (the
// rollback comes before DISCARD ALL, which a transaction block refuses).
// The pool has one server, so the next client gets the same one if it is
// kept at all.
func TestTxModePinnedServerIsResetForTheNextClient(t *testing.T) {
	t.Parallel()
	createPinRole(t)
	p := txProxy(t, 1, nil)
	for _, tc := range []struct {
		name  string
		extra []string // after the pinning statements
	}{
		{"idle", nil},
		{"inside a transaction", []string{"BEGIN", "SELECT 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			pinned := p.Connect(t)
			for _, sql := range append([]string{
				"CREATE TEMP TABLE txpin_tmp (x int)",
				"SELECT pg_advisory_lock(4242)",
				"LISTEN txpin_channel",
				"SET ROLE " + pinRole,
			}, tc.extra...) {
				if _, err := pinned.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			pid := scanSingle[uint32](t, pinned, "SELECT pg_backend_pid()")
			pinned.Close(context.Background())

			next := p.Connect(t)
			var (
				got       uint32
				temp      *string
				locks     int
				listening int
				user      string
			)
			if err := next.QueryRow(ctx, `SELECT pg_backend_pid(), to_regclass('txpin_tmp')::text,
				(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
				(SELECT count(*) FROM pg_listening_channels()), current_user`).Scan(&got, &temp, &locks, &listening, &user); err != nil {
				t.Fatal(err)
			}
			if got != pid {
				t.Fatalf("next client on backend %d, the pinned client's was %d: its server was not reset and kept", got, pid)
			}
			if temp != nil || locks != 0 || listening != 0 || user != appUser {
				t.Fatalf("next client on the pinned client's server sees temp table %v, %d advisory locks, %d LISTEN channels, current_user %s",
					derefOr(temp, "none"), locks, listening, user)
			}
			next.Close(context.Background())
		})
	}
}

func derefOr(s *string, def string) string {
	if s == nil {
		return def
	}
	return *s
}

// TestTxModeDeallocateAllForgetsStatements: after SQL DEALLOCATE ALL a client
// may prepare its protocol-level statement names again, as on PostgreSQL,
// and a statement with a text pgone had prepared on the server before is
// prepared again there (DEALLOCATE ALL dropped pgone's server-side copies).
func TestTxModeDeallocateAllForgetsStatements(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 1, nil)
	for _, target := range []struct{ name, dsn string }{{"postgres", directDSN()}, {"pgone", p.AppDSN()}} {
		t.Run(target.name, func(t *testing.T) {
			ctx := testCtx(t)
			pc := connect(t, target.dsn).PgConn()
			if _, err := pc.Prepare(ctx, "s1", "SELECT 1", nil); err != nil {
				t.Fatal(err)
			}
			if _, err := pc.Exec(ctx, "DEALLOCATE ALL").ReadAll(); err != nil {
				t.Fatal(err)
			}
			if _, err := pc.Prepare(ctx, "s1", "SELECT 2", nil); err != nil {
				t.Fatalf("Parse of s1 after DEALLOCATE ALL: %v", err)
			}
			if got := execPrepared(t, pc, "s1"); got != "2" {
				t.Fatalf("s1 after DEALLOCATE ALL and a new Parse returns %q, want 2", got)
			}
			// Same text as the deallocated statement: pgone must not believe
			// its server still has it.
			if _, err := pc.Prepare(ctx, "s2", "SELECT 1", nil); err != nil {
				t.Fatal(err)
			}
			if got := execPrepared(t, pc, "s2"); got != "1" {
				t.Fatalf("s2 (the text of a deallocated statement) returns %q, want 1", got)
			}
		})
	}
}

// execPrepared runs a prepared statement without parameters and returns its
// single value as text.
func execPrepared(t *testing.T, pc *pgconn.PgConn, name string) string {
	t.Helper()
	res := pc.ExecPrepared(testCtx(t), name, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("execute %s: %v", name, res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		t.Fatalf("execute %s: rows %q", name, res.Rows)
	}
	return string(res.Rows[0][0])
}

// TestMaxMessageSizeFromConfig: the configured max_message_size, not a
// built-in one, bounds a client's message after login: one byte over it is
// refused with 08P01 and the connection closed; one just under it runs.
func TestMaxMessageSizeFromConfig(t *testing.T) {
	t.Parallel()
	const limit = 4096
	p := startProxy(t, func(c *config.Config) { c.Proxy.Limits.MaxMessageSize = limit })
	ctx := testCtx(t)
	// The limit is on a message's body: a Query's text and its NUL.
	fits := "SELECT '" + strings.Repeat("x", limit-1-len("SELECT ''")) + "'"
	conn := p.Connect(t)
	if _, err := conn.Exec(ctx, fits, pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatalf("a query of exactly max_message_size: %v", err)
	}
	over := fits + " "
	_, err := conn.Exec(ctx, over, pgx.QueryExecModeSimpleProtocol)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "08P01" || !strings.Contains(pe.Message, "max_message_size") {
		t.Fatalf("a query one byte over max_message_size %d: %v, want 08P01 naming max_message_size", limit, err)
	}
}
