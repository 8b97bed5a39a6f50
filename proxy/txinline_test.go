package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// In transaction mode the session goroutine reads a quick reply itself and
// hands a slow one to a pump goroutine (serveReplies). These tests cover
// what the hand-over is for, and replies the inline reader must not break.

// TestTxModeCancelRunningQuery: a CancelRequest reaches the server running
// a slow query, and the connection works after.
func TestTxModeCancelRunningQuery(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, nil)
	conn := connectCancelling(t, p.AppDSN())
	err, took := sleepCancelledAfter(t, conn, 300*time.Millisecond)
	if outcomeCode(err) != "57014" {
		t.Fatalf("cancelled pg_sleep(30): %v, want 57014", err)
	}
	if took > 5*time.Second {
		t.Fatalf("cancel took %s", took)
	}
	requireConnUsable(t, conn)
}

// TestClientGoneDuringSlowQuery: a client that disconnects while its query
// runs has that query cancelled and its server connection closed at once,
// in both pool modes, not left running (and holding its locks) until it
// finishes: PostgreSQL alone would not notice the closed socket.
func TestClientGoneDuringSlowQuery(t *testing.T) {
	t.Parallel()
	for _, mode := range []pool.Mode{pool.ModeSession, pool.ModeTransaction} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			db := "gone_" + string(mode)
			ownDatabase(t, db)
			p := startProxy(t, func(c *config.Config) { c.Pool.Mode = mode })
			admin := connect(t, directDSN())
			c := connectMsg(t, p.DSN(appUser, appPassword, db))
			c.send(&pgproto3.Query{String: "SELECT pg_sleep(60)"})
			sleeping := func() int {
				return scanSingle[int](t, admin, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query = 'SELECT pg_sleep(60)'", db)
			}
			eventually(t, "the query to run", func() bool { return sleeping() == 1 })
			_ = c.nc.Close()
			start := time.Now()
			eventually(t, "the query to end after its client left", func() bool { return sleeping() == 0 })
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("query ended %s after the client left", d)
			}
			next := connect(t, p.DSN(appUser, appPassword, db))
			if n := scanSingle[int](t, next, "SELECT 41 + 1"); n != 42 {
				t.Fatalf("next client got %d", n)
			}
		})
	}
}

// TestTxModeLargeRows: rows larger than the read buffer, alone, many, and
// after a pause long enough for the watchdog to act, arrive whole.
func TestTxModeLargeRows(t *testing.T) {
	t.Parallel()
	p := txProxy(t, 2, nil)
	conn := p.Connect(t)
	for i := 0; i < 3; i++ {
		for _, tc := range []struct {
			sql  string
			rows int
			size int
		}{
			{"SELECT repeat('x', 3000000)", 1, 3000000},
			{"SELECT repeat('y', 100000) FROM generate_series(1, 20)", 20, 100000},
			{"SELECT repeat('z', 2000000) FROM (SELECT pg_sleep(0.03)) s", 1, 2000000},
		} {
			rows, err := conn.Query(testCtx(t), tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				if len(s) != tc.size || strings.Trim(s, s[:1]) != "" {
					t.Fatalf("%s: row of %d bytes, want %d", tc.sql, len(s), tc.size)
				}
				n++
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("%s: %v", tc.sql, err)
			}
			if n != tc.rows {
				t.Fatalf("%s: %d rows, want %d", tc.sql, n, tc.rows)
			}
		}
	}
	requireConnUsable(t, conn)
}
