package proxy_test

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/pool"
)

// resetStep is one step of TestResetKeepsStartupParameters: statements sent
// one by one (simple protocol unless extended), then the settings shown.
type resetStep struct {
	name  string
	run   func(t *testing.T, c *pgconn.PgConn)
	shows []string
}

func simple(sql ...string) func(t *testing.T, c *pgconn.PgConn) {
	return func(t *testing.T, c *pgconn.PgConn) {
		t.Helper()
		for _, s := range sql {
			if _, err := c.Exec(testCtx(t), s).ReadAll(); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
}

var resetSteps = []resetStep{
	{"RESET x", simple("SET datestyle = 'German'", "RESET datestyle"), []string{"datestyle"}},
	{"RESET ALL", simple("SET datestyle = 'German'", "SET extra_float_digits = 2", "RESET ALL"), []string{"datestyle", "extra_float_digits", "timezone"}},
	{"SET x TO DEFAULT", simple("SET datestyle TO DEFAULT", "SET timezone = DEFAULT"), []string{"datestyle", "timezone"}},
	{"DISCARD ALL", simple("SET datestyle = 'German'", "DISCARD ALL"), []string{"datestyle", "timezone"}},
	{"RESET in a rolled back transaction", simple("SET datestyle = 'German'", "BEGIN", "RESET datestyle", "ROLLBACK"), []string{"datestyle"}},
	{"RESET then SET in one query", simple("RESET datestyle; SET datestyle = 'SQL, DMY'"), []string{"datestyle"}},
	{"extended unnamed RESET", func(t *testing.T, c *pgconn.PgConn) {
		simple("SET datestyle = 'German'")(t, c)
		if _, err := c.ExecParams(testCtx(t), "RESET datestyle", nil, nil, nil, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}, []string{"datestyle"}},
	{"extended prepared RESET run later", func(t *testing.T, c *pgconn.PgConn) {
		if _, err := c.Prepare(testCtx(t), "r", "RESET ALL", nil); err != nil {
			t.Fatal(err)
		}
		simple("SET datestyle = 'German'", "SET timezone = 'UTC'")(t, c)
		if _, err := c.ExecPrepared(testCtx(t), "r", nil, nil, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}, []string{"datestyle", "timezone"}},
}

// TestResetKeepsStartupParameters checks that startup parameters are the
// session's reset values through pgone as they are in PostgreSQL: RESET x,
// RESET ALL, SET x TO DEFAULT and DISCARD ALL return to them, in both pool
// modes, and the client is told the value it ends with (ParameterStatus).
func TestResetKeepsStartupParameters(t *testing.T) {
	t.Parallel()
	params := map[string]string{"DateStyle": "Postgres, MDY", "TimeZone": "Asia/Tokyo", "extra_float_digits": "1"}
	for _, mode := range []pool.Mode{pool.ModeSession, pool.ModeTransaction} {
		p := startProxy(t, func(cfg *config.Config) { cfg.Pool.Mode = mode })
		for _, step := range resetSteps {
			t.Run(fmt.Sprintf("%s/%s", mode, step.name), func(t *testing.T) {
				got := resetOutcome(t, p.AppDSN(), params, step)
				want := resetOutcome(t, directDSN(), params, step)
				if got != want {
					t.Fatalf("through pgone:\n%s\nPostgreSQL:\n%s", got, want)
				}
			})
		}
	}
}

// resetOutcome runs step on a fresh connection with the startup params and
// describes the settings shown after it and the DateStyle reported.
func resetOutcome(t *testing.T, dsn string, params map[string]string, step resetStep) string {
	t.Helper()
	c, err := pgconn.ConnectConfig(testCtx(t), pgconnStartupConfig(t, dsn, params))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(testCtx(t))
	step.run(t, c)
	out := ""
	for _, s := range step.shows {
		res, err := c.Exec(testCtx(t), "SHOW "+s).ReadAll()
		if err != nil {
			t.Fatalf("SHOW %s: %v", s, err)
		}
		out += fmt.Sprintf("%s = %s\n", s, res[0].Rows[0][0])
	}
	// A request after the step makes sure every reply of it has arrived.
	out += "reported DateStyle = " + c.ParameterStatus("DateStyle") + "\n"
	return out
}
