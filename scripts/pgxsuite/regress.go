package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// Suites `pgxsuite up` prepares the servers for.
const (
	suitePgx     = "pgx"     // pgx's test database and roles (scripts/pgx-suite.sh)
	suiteRegress = "regress" // PostgreSQL's regression database (scripts/pg-regress.sh)
)

// regressDatabase is the database pg_regress runs in by default.
const regressDatabase = "regression"

// setup prepares the cluster for the suite.
func (o upOptions) setup(ctx context.Context, c *pgtest.Cluster) error {
	if o.suite == suiteRegress {
		return setupRegressDatabase(ctx, c)
	}
	return setupTestDatabase(ctx, c)
}

// writeEnv publishes where the suite connects, as shell exports.
func (o upOptions) writeEnv(host string, port int) error {
	if o.suite == suiteRegress {
		return writeExports(o.envFile, [][2]string{
			{"PGHOST", host},
			{"PGPORT", fmt.Sprint(port)},
			{"PGUSER", pgtest.SuperUser},
			{"PGPASSWORD", pgtest.SuperPassword},
			{"PGDATABASE", regressDatabase},
			{"PGSSLMODE", "disable"},
		})
	}
	return writeExports(o.envFile, pgxEnv(host, port))
}

// login is the user, password and database startPgone waits to log in with.
func (o upOptions) login() (user, password, dbname string) {
	if o.suite == suiteRegress {
		return pgtest.SuperUser, pgtest.SuperPassword, regressDatabase
	}
	return mainUser, testPassword, testDatabase
}

// setupRegressDatabase creates the database as pg_regress's create_database
// does (src/test/regress/pg_regress.c, PostgreSQL 15): pg_regress runs with
// --use-existing, so that its own connection to "postgres" for the setup
// does not have to go through pgone, and both targets start from the same
// database.
func setupRegressDatabase(ctx context.Context, c *pgtest.Cluster) error {
	if err := c.Exec(ctx, `CREATE DATABASE "`+regressDatabase+`" TEMPLATE=template0`); err != nil {
		return err
	}
	conn, err := pgconn.Connect(ctx, c.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, "postgres"))
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.Background())
	var sql string
	for _, kv := range [][2]string{
		{"lc_messages", "C"}, {"lc_monetary", "C"}, {"lc_numeric", "C"}, {"lc_time", "C"},
		{"bytea_output", "hex"}, {"timezone_abbreviations", "Default"},
	} {
		sql += fmt.Sprintf(`ALTER DATABASE "%s" SET %s TO '%s';`, regressDatabase, kv[0], kv[1])
	}
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("set up %s: %w", regressDatabase, err)
	}
	return nil
}

// regressPgoneConfig serves every database ("*") from the primary under the
// client's own login: the regression suite runs as a superuser, creates
// roles and databases and reconnects (\c) to the database it is in.
func regressPgoneConfig(o upOptions, c *pgtest.Cluster, port, httpPort int) string {
	mode := "transaction"
	if o.target == targetSession {
		mode = "session"
	}
	return fmt.Sprintf(`# written by scripts/pgxsuite for the regression suite, target %[1]s
listen: "127.0.0.1:%[2]d"
auth_method: scram-sha-256
limits:
  shutdown_timeout: 5s
databases:
  "*":
    host: %[3]s
    port: %[4]d
users:
  %[5]s: {password: %[6]s}
pool:
  mode: %[7]s
  pool_size: %[8]d
  server_tls: {sslmode: disable}
log:
  level: info
http:
  listen: "127.0.0.1:%[9]d"
`, o.target, port, c.Primary.Host, c.Primary.Port, pgtest.SuperUser, pgtest.SuperPassword, mode, o.poolSize, httpPort)
}
