package proxy_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// limitedRole creates a login role allowed one connection to appdb.
func limitedRole(t *testing.T, name string) string {
	t.Helper()
	for _, sql := range []string{
		fmt.Sprintf(`DROP ROLE IF EXISTS %s`, name),
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s-pw' CONNECTION LIMIT 1`, name, name),
		fmt.Sprintf(`GRANT CONNECT ON DATABASE %s TO %s`, appDB, name),
	} {
		if err := cluster.Exec(testCtx(t), sql); err != nil {
			t.Fatal(err)
		}
	}
	return name
}

// TestServerFullClientWaits checks that when PostgreSQL refuses pgone's
// connection for too many connections (53300), the client waits within
// query_wait_timeout for a server instead of getting PostgreSQL's FATAL;
// it gets a server once one is free, or pgone's 53300 at the timeout.
func TestServerFullClientWaits(t *testing.T) {
	t.Parallel()
	role := limitedRole(t, "clfull")
	for _, mode := range []pool.Mode{pool.ModeSession, pool.ModeTransaction} {
		t.Run(string(mode), func(t *testing.T) {
			p := startProxy(t, func(cfg *config.Config) {
				cfg.Pool.Mode = mode
				cfg.Pool.QueryWaitTimeout = 3 * time.Second
				cfg.Proxy.Databases["full"] = proxy.Database{Host: cluster.Primary.Host, Port: cluster.Primary.Port,
					DBName: appDB, User: role, Password: role + "-pw"}
			})
			dsn := p.DSN(appUser, appPassword, "full")
			blocker, err := pgconn.Connect(testCtx(t), cluster.Primary.DSN(role, role+"-pw", appDB))
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Close(context.Background())
			// The server is full: after query_wait_timeout, pgone's 53300.
			start := time.Now()
			err = queryVia(dsn)
			pe := pgErrorOf(t, err)
			if pe.Code != "53300" || strings.Contains(pe.Message, "too many connections for role") {
				t.Fatalf("server full: %s %q, want pgone's 53300", pe.Code, pe.Message)
			}
			if took := time.Since(start); took < 2*time.Second {
				t.Fatalf("refused after %s, want a wait of about query_wait_timeout", took)
			}
			// A server freed while the client waits serves it.
			done := make(chan error, 1)
			go func() { done <- queryVia(dsn) }()
			waitUntil(t, "pgone to try the server", func() bool {
				return poolsOf(p, "full").Open > 0
			})
			blocker.Close(context.Background())
			if err := <-done; err != nil {
				t.Fatalf("client waiting for a server: %v", err)
			}
		})
	}
}

// queryVia connects to dsn and runs one query.
func queryVia(dsn string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "SELECT 1").ReadAll()
	return err
}

// TestServerUnreachableErrorHidesAddress checks that a client whose server
// cannot be reached gets 08006 with a generic text: the server's address
// and the dial error go to pgone's log only.
func TestServerUnreachableErrorHidesAddress(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // nothing listens there now
	for _, mode := range []pool.Mode{pool.ModeSession, pool.ModeTransaction} {
		t.Run(string(mode), func(t *testing.T) {
			p := startProxy(t, func(cfg *config.Config) {
				cfg.Pool.Mode = mode
				cfg.Pool.QueryWaitTimeout = 300 * time.Millisecond
				cfg.Proxy.Databases["gone"] = proxy.Database{Host: "127.0.0.1", Port: port, DBName: appDB, User: appUser, Password: appPassword}
			})
			pe := pgErrorOf(t, queryVia(p.DSN(appUser, appPassword, "gone")))
			if pe.Code != "08006" {
				t.Fatalf("unreachable server: %s %q, want 08006", pe.Code, pe.Message)
			}
			text := pe.Message + pe.Detail + pe.Hint
			for _, leak := range []string{strconv.Itoa(port), "127.0.0.1", "dial", "refused"} {
				if strings.Contains(text, leak) {
					t.Fatalf("client error %q tells %q", text, leak)
				}
			}
		})
	}
}
