package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// Idle clients hold no read buffer: each takes one from a shared pool only
// while it has bytes to read (what keeps 10,000 idle clients small; see
// bench/README.md). The metric shows it; the clients keep working.
func TestIdleClientsHoldNoReadBuffer(t *testing.T) {
	for _, mode := range []pool.Mode{pool.ModeTransaction, pool.ModeSession} {
		t.Run(string(mode), func(t *testing.T) {
			p := startObservedProxy(t, func(c *config.Config) {
				c.Pool.Mode = mode
				c.Pool.PoolSize = 60 // session mode holds a server per client
			}, nil)
			const clients = 50
			var conns []*pgx.Conn
			for range clients {
				conns = append(conns, p.Connect(t))
			}
			for round := range 2 {
				for i, c := range conns {
					var n int
					if err := c.QueryRow(testCtx(t), "SELECT $1::int", i).Scan(&n); err != nil || n != i {
						t.Fatalf("round %d client %d: %d, %v", round, i, n, err)
					}
				}
				// All idle now: every buffer goes back as its session waits.
				want := "pgone_proxy_client_read_buffers 0"
				deadline := time.Now().Add(10 * time.Second)
				for {
					text := p.scrape(t)
					if strings.Contains(text, want+"\n") {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("round %d: %d idle clients, metrics say %q, want %q", round, clients,
							grepLines(text, "pgone_proxy_client_read_buffers"), want)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}
