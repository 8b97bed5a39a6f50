package proxy_test

import (
	"fmt"
	"strings"
	"testing"

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
				waitReadBuffers(t, p, 0, fmt.Sprintf("round %d: %d idle clients", round, clients))
			}
			// A client with half a message sent holds a buffer until the
			// rest arrives: the gauge counts it, then lets it go.
			half := connectMsg(t, p.AppDSN())
			text := "SELECT 1" + strings.Repeat(" ", 87) // body: text and NUL, 96 bytes
			frame := append([]byte{'Q', 0, 0, 0, 100}, text...)
			frame = append(frame, 0)
			if _, err := half.nc.Write(frame[:8]); err != nil {
				t.Fatal(err)
			}
			waitReadBuffers(t, p, 1, "a client with half a message sent")
			if _, err := half.nc.Write(frame[8:]); err != nil {
				t.Fatal(err)
			}
			half.readUntil(isRFQ)
			waitReadBuffers(t, p, 0, "after the rest of the message")
		})
	}
}

// waitReadBuffers waits until the read-buffer gauge shows want.
func waitReadBuffers(t *testing.T, p *observedProxy, want int, when string) {
	t.Helper()
	line := fmt.Sprintf("pgone_proxy_client_read_buffers %d\n", want)
	var text string
	waitUntil(t, when+": "+line, func() bool {
		text = p.scrape(t)
		return strings.Contains(text, line)
	})
}
