package proxy_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestShutdownServesTakenRequest: a BEGIN that an idle session has already
// taken in when Shutdown decides what is idle belongs to a transaction the
// client began, so drain must let it finish (as PgBouncer lets a begun
// transaction finish within the grace period), not close the session as
// idle under it. The session goroutine is held between taking the BEGIN
// in and sending it until Shutdown has asked every session to drain; then
// BEGIN, the INSERT and COMMIT must succeed and only then 57P01 come.
// Before the fix, transaction mode closed the session with 57P01 while its
// BEGIN went on to a server (the client saw BEGIN succeed and its next
// statement fail, or BEGIN itself fail).
func TestShutdownServesTakenRequest(t *testing.T) {
	for _, mode := range []pool.Mode{pool.ModeSession, pool.ModeTransaction} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			table := "drain_taken_" + string(mode)
			createTable(t, table)
			var armed atomic.Bool
			taken, release, drained := make(chan struct{}), make(chan struct{}), make(chan struct{})
			p := serveProxy(t, validConfig(t, baseConfig(), func(cfg *config.Config) {
				cfg.Pool.Mode = mode
			}), testLog(), func(p *testProxy) {
				p.Srv.SetAfterIntake(func() {
					if armed.CompareAndSwap(true, false) {
						close(taken)
						<-release
					}
				})
				var once sync.Once
				p.Srv.SetAfterDrain(func() { once.Do(func() { close(drained) }) })
			})
			c := connectMsg(t, p.AppDSN())
			c.mustQuery("SELECT 1", 'I') // idle, and in session mode on a server
			armed.Store(true)
			c.send(&pgproto3.Query{String: "BEGIN"})
			<-taken
			shutdownErr := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				shutdownErr <- p.Srv.Shutdown(ctx)
			}()
			<-drained
			close(release)
			if got := c.readUntil(isRFQ); got[len(got)-1] != `*pgproto3.ReadyForQuery {"Type":"ReadyForQuery","TxStatus":"T"}` {
				t.Fatalf("BEGIN taken in before the drain: got %q, want it to succeed", got)
			}
			c.mustQuery(fmt.Sprintf("INSERT INTO %s VALUES ('x')", table), 'T')
			c.mustQuery("COMMIT", 'I')
			c.expectShutdownClose(time.Second)
			if got := committedRows(t, table); got != "x" {
				t.Fatalf("committed rows %q, want x", got)
			}
			select {
			case err := <-shutdownErr:
				if err != nil {
					t.Fatalf("Shutdown: %v, want nil (the transaction ended within the grace period)", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Shutdown did not return")
			}
		})
	}
}
