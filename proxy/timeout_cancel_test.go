package proxy_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// TestQueryTimeoutCancelDoneBeforeNextRequest: PostgreSQL's postmaster
// signals a cancelled backend twice (its pid, then its process group), so
// the first signal can end the statement, and its 57014 reach the client,
// while the second is still on its way: it then cancels whatever the
// server runs next (a session-mode client's next statement got
// "canceling statement due to user request" about 1 run in 30). pgone,
// which cancels for query_timeout, must hold back the next request for
// that server until its cancel's connection has closed (by then both
// signals are sent), as libpq's PQcancel caller does. The scripted server
// answers the cancel at once but keeps the cancel connection open a
// while, and records whether the next request came before it closed. In
// transaction mode the client holds its server inside a transaction
// block; outside one the pool already keeps the server until the cancel
// is done.
func TestQueryTimeoutCancelDoneBeforeNextRequest(t *testing.T) {
	cases := []struct {
		mode   pool.Mode
		before []string
		next   string
	}{
		{pool.ModeSession, nil, "SELECT 1"},
		{pool.ModeTransaction, []string{"BEGIN"}, "ROLLBACK"},
	}
	for _, tc := range cases {
		t.Run(string(tc.mode), func(t *testing.T) {
			t.Parallel()
			canceled, nextCame := make(chan struct{}, 1), make(chan struct{})
			var cancelOpen, early atomic.Bool
			s := startScripted(t, func(c *scriptedConn) {
				c.serveUntil(queryIs("SELECT slow"), false)
				select {
				case <-canceled:
				case <-time.After(10 * time.Second):
					return
				}
				// The first signal ended the statement.
				c.be.Send(&pgproto3.ErrorResponse{Severity: "ERROR", Code: "57014", Message: "canceling statement due to user request"})
				c.be.Send(&pgproto3.ReadyForQuery{TxStatus: c.tx})
				if c.be.Flush() != nil {
					return
				}
				msg, err := c.next()
				if err != nil {
					return
				}
				early.Store(cancelOpen.Load())
				close(nextCame)
				if c.answer(msg) == nil {
					c.serveUntil(func(pgproto3.FrontendMessage) bool { return false }, false)
				}
			})
			s.setOnCancel(func() {
				cancelOpen.Store(true)
				canceled <- struct{}{}
				// The second signal takes a while: the cancel connection
				// stays open until the next request comes or 500ms pass.
				select {
				case <-nextCame:
				case <-time.After(500 * time.Millisecond):
				}
				cancelOpen.Store(false)
			})
			p := s.proxyTo(t, func(c *config.Config) {
				c.Pool.Mode = tc.mode
				c.Proxy.Limits.QueryTimeout = 200 * time.Millisecond
			})
			c := connectMsg(t, p.DSN(appUser, appPassword, "fake"))
			for _, sql := range tc.before {
				if errs := errorsIn(c.simpleQuery(sql)); len(errs) > 0 {
					t.Fatalf("%s: %v", sql, errs)
				}
			}
			errs := errorsIn(c.simpleQuery("SELECT slow"))
			if len(errs) != 1 || !strings.Contains(errs[0], "query_timeout") {
				t.Fatalf("SELECT slow: %v; want one 57014 saying query_timeout", errs)
			}
			if errs := errorsIn(c.simpleQuery(tc.next)); len(errs) > 0 {
				t.Fatalf("%s: %v", tc.next, errs)
			}
			if early.Load() {
				t.Errorf("the request after the query_timeout reached the server while pgone's cancel was still in progress")
			}
		})
	}
}
