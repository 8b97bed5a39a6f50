package proxy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/proxy"
	"github.com/pgone/pgone/proxy/auth"
)

// TestAuthQueryLogsInUsersMissingFromConfig: with auth_query set, a user
// that exists only on the server (SCRAM verifier in pg_authid) logs in
// through pgone with its password, and a wrong password or an unknown name
// gets 28P01, as from PostgreSQL. appdb forces the server login (app).
func TestAuthQueryLogsInUsersMissingFromConfig(t *testing.T) {
	ctx := testCtx(t)
	if err := cluster.Exec(ctx, "CREATE ROLE aq_scram LOGIN PASSWORD 'aq-scram-pw'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "DROP ROLE aq_scram") })
	p := startProxy(t, func(c *config.Config) {
		c.Proxy.AuthQuery.User = pgtest.SuperUser
		c.Proxy.AuthQuery.Password = pgtest.SuperPassword
	})

	for _, method := range []string{"scram-sha-256", "md5"} {
		t.Run(method, func(t *testing.T) {
			if method == "md5" {
				// md5 with a SCRAM verifier stored runs SCRAM, as in PostgreSQL.
				if err := p.Srv.Reload(withAuthMethod(p.Cfg, "md5"), p.Cfg.Pool); err != nil {
					t.Fatal(err)
				}
			}
			conn, err := pgconn.Connect(ctx, p.DSN("aq_scram", "aq-scram-pw", appDB))
			if err != nil {
				t.Fatalf("right password: %v", err)
			}
			rows, err := conn.Exec(ctx, "SELECT current_user").ReadAll()
			conn.Close(ctx)
			if err != nil || string(rows[0].Rows[0][0]) != appUser {
				t.Fatalf("SELECT current_user: %v %v", rows, err)
			}
			for _, tc := range []struct{ user, password string }{{"aq_scram", "wrong"}, {"aq_nobody", "aq-scram-pw"}} {
				_, err := pgconn.Connect(ctx, p.DSN(tc.user, tc.password, appDB))
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "28P01" {
					t.Errorf("%s/%s: err = %v, want 28P01", tc.user, tc.password, err)
				}
			}
		})
	}
}

func withAuthMethod(c *config.Config, method string) proxy.Config {
	pc := c.Proxy
	pc.AuthMethod = auth.Method(method)
	return pc
}

// TestSCRAMPassthroughLogsInAsTheClient: a database without a forced user
// logs in to the server as the client. For a user whose only secret is a
// SCRAM verifier (from auth_query or from users), pgone has no password to
// send; it logs in with the ClientKey recovered from the client's proof.
// The server then sees the client's own role.
func TestSCRAMPassthroughLogsInAsTheClient(t *testing.T) {
	ctx := testCtx(t)
	for _, sql := range []string{
		"CREATE ROLE pt_queried LOGIN PASSWORD 'pt-queried-pw'",
		"CREATE ROLE pt_listed LOGIN PASSWORD 'pt-listed-pw'",
	} {
		if err := cluster.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "DROP ROLE pt_queried; DROP ROLE pt_listed") })
	listedSecret := rolpassword(t, "pt_listed")
	p := startProxy(t, func(c *config.Config) {
		c.Proxy.AuthQuery.User = pgtest.SuperUser
		c.Proxy.AuthQuery.Password = pgtest.SuperPassword
		c.Proxy.Databases["asclient"] = proxy.Database{Host: cluster.Primary.Host, Port: cluster.Primary.Port, DBName: appDB}
		c.Proxy.Users["pt_listed"] = proxy.User{Password: listedSecret}
	})
	for _, tc := range []struct{ user, password string }{{"pt_queried", "pt-queried-pw"}, {"pt_listed", "pt-listed-pw"}} {
		// Twice: the second login reuses the pool the first one made.
		for range 2 {
			conn, err := pgconn.Connect(ctx, p.DSN(tc.user, tc.password, "asclient"))
			if err != nil {
				t.Fatalf("%s: %v", tc.user, err)
			}
			rows, err := conn.Exec(ctx, "SELECT current_user").ReadAll()
			conn.Close(ctx)
			if err != nil || string(rows[0].Rows[0][0]) != tc.user {
				t.Fatalf("%s: SELECT current_user: %v %v", tc.user, rows, err)
			}
		}
		_, err := pgconn.Connect(ctx, p.DSN(tc.user, "wrong", "asclient"))
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("%s with a wrong password: err = %v, want 28P01", tc.user, err)
		}
	}
}

// rolpassword reads a role's stored secret (its SCRAM verifier).
func rolpassword(t *testing.T, role string) string {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgconn.Connect(ctx, cluster.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", [][]byte{[]byte(role)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		t.Fatalf("no secret for %s: %v", role, res.Err)
	}
	return string(res.Rows[0][0])
}
