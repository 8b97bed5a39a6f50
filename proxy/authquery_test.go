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
