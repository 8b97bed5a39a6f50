package proxy_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestSessionStartupQueryTimeoutClosesServer checks that a server that
// does not answer the session-mode startup query (set_config of the
// client's parameters) within server_connect_timeout is closed after a
// cancel, not reset and pooled: its late reply is still on the way, and a
// DISCARD ALL sent behind it would be answered by the startup query's
// ReadyForQuery, leaving the DISCARD's reply for the next client.
func TestSessionStartupQueryTimeoutClosesServer(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var after []string // queries the server got after the slow one
	slowDone := make(chan struct{})
	s := startScripted(t, func(c *scriptedConn) {
		slow := false
		for {
			msg, err := c.next()
			if err != nil {
				if slow {
					close(slowDone)
				}
				return
			}
			if q, ok := msg.(*pgproto3.Query); ok && strings.Contains(q.String, "set_config") && !slow {
				slow = true
				time.Sleep(600 * time.Millisecond) // past server_connect_timeout
			} else if slow {
				if q, ok := msg.(*pgproto3.Query); ok {
					mu.Lock()
					after = append(after, q.String)
					mu.Unlock()
				}
			}
			if c.answer(msg) != nil {
				if slow {
					close(slowDone)
				}
				return
			}
		}
	})
	p := s.proxyTo(t, func(c *config.Config) {
		c.Pool.Mode = pool.ModeSession
		c.Pool.ServerConnectTimeout = 200 * time.Millisecond
	})
	err := connectErr(t, p.DSN(appUser, appPassword, "fake")+" application_name=slowstart")
	if err == nil || !strings.Contains(err.Error(), "08006") {
		t.Fatalf("login through a server that does not answer its startup query: %v; want 08006", err)
	}
	select {
	case <-slowDone:
	case <-time.After(10 * time.Second):
		t.Fatal("pgone kept the server connection whose startup query timed out")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(after) != 0 {
		t.Errorf("pgone sent %q to a server whose startup query had not answered; want it closed", after)
	}
	waitUntil(t, "the cancel request for the startup query", func() bool { return s.cancelCount() > 0 })
}
