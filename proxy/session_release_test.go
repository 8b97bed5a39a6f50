package proxy_test

import (
	"context"
	"testing"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestSessionModeClientLeavingMidTransactionGetsFreshBackend checks that in
// session mode a server whose client left inside a transaction (failed or
// not) is closed, not handed to the next client, as pgxpool's
// TestConnReleaseClosesConnInFailedTransaction expects; a client that left
// idle leaves its server for the next one.
func TestSessionModeClientLeavingMidTransactionGetsFreshBackend(t *testing.T) {
	t.Parallel()
	p := startProxy(t, func(cfg *config.Config) {
		cfg.Pool.Mode = pool.ModeSession
		cfg.Pool.PoolSize = 1
	})
	for _, tc := range []struct {
		name  string
		sql   []string
		fresh bool
	}{
		{"failed transaction", []string{"BEGIN", "SELECT 1/0"}, true},
		{"open transaction", []string{"BEGIN", "SELECT 1"}, true},
		{"idle", []string{"SELECT 1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := p.Connect(t)
			pid := scanSingle[int](t, c, "SELECT pg_backend_pid()")
			for _, s := range tc.sql {
				_, _ = c.Exec(testCtx(t), s)
			}
			c.Close(context.Background())
			next := p.Connect(t)
			got := scanSingle[int](t, next, "SELECT pg_backend_pid()")
			if fresh := got != pid; fresh != tc.fresh {
				t.Fatalf("next client's backend %d after %d: fresh = %v, want %v", got, pid, fresh, tc.fresh)
			}
			next.Close(context.Background())
		})
	}
}
