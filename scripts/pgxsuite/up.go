package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgone/pgone/internal/pgtest"
)

// Targets: where pgx's tests connect.
const (
	targetDirect  = "direct"  // PostgreSQL itself
	targetSession = "session" // pgone, session pooling
	targetTx      = "tx"      // pgone, transaction pooling
	targetSplit   = "split"   // pgone, transaction pooling, primary + replica
)

// Names pgx's CI uses (pgx/.github/workflows/ci.yml, testsetup/).
const (
	testDatabase = "pgx_test"
	testPassword = "secret"
	mainUser     = "pgx_md5" // CI's PGX_TEST_DATABASE user; here its password is SCRAM (pgtest's pg_hba)
	scramUser    = "pgx_scram"
)

// upOptions are the flags of `pgxsuite up`.
type upOptions struct {
	target      string
	pgone       string
	envFile     string
	logFile     string
	metricsFile string
	poolSize    int
	consistency string
	suite       string // suitePgx or suiteRegress: what the servers are set up for
}

func cmdUp(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o upOptions
	fs.StringVar(&o.target, "target", "", "direct, session, tx or split")
	fs.StringVar(&o.pgone, "pgone", "bin/pgone", "pgone binary")
	fs.StringVar(&o.envFile, "env", "", "file to write the PGX_TEST_* exports to once everything is ready")
	fs.StringVar(&o.logFile, "log", "", "pgone's log file (default: stderr)")
	fs.StringVar(&o.metricsFile, "metrics", "", "file for pgone's /metrics as it was just before pgone stops")
	fs.IntVar(&o.poolSize, "pool-size", 20, "pgone pool_size")
	fs.StringVar(&o.consistency, "consistency", "", "split: the database's consistency level (default: pgone's default)")
	fs.StringVar(&o.suite, "suite", suitePgx, "pgx (pgx's test database and roles) or regress (PostgreSQL's regression database, a superuser login, every database through pgone)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	switch o.target {
	case targetDirect, targetSession, targetTx, targetSplit:
	default:
		fmt.Fprintf(stderr, "pgxsuite up: -target must be direct, session, tx or split, got %q\n", o.target)
		return 2
	}
	if o.suite != suitePgx && o.suite != suiteRegress {
		fmt.Fprintf(stderr, "pgxsuite up: -suite must be %s or %s, got %q\n", suitePgx, suiteRegress, o.suite)
		return 2
	}
	if o.envFile == "" {
		fmt.Fprintln(stderr, "pgxsuite up: -env is required")
		return 2
	}
	logger := log.New(stderr, "pgxsuite: ", log.LstdFlags)
	if err := up(o, logger); err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}

// up starts everything, publishes the environment, waits for a signal and
// stops everything it started, in reverse order, whatever happened.
func up(o upOptions, logger *log.Logger) (err error) {
	// A signal during the start must still clean up: the deferred stops run.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	logger.Printf("starting PostgreSQL for target %s", o.target)
	cluster, err := pgtest.StartCluster(ctx, pgtest.Options{Replica: o.target == targetSplit})
	if err != nil {
		return err
	}
	defer func() {
		if stopErr := cluster.Stop(); stopErr != nil {
			logger.Printf("stopping PostgreSQL: %v", stopErr)
		}
		logger.Printf("stopped PostgreSQL, removed %s", cluster.Dir)
	}()
	if err := o.setup(ctx, cluster); err != nil {
		return err
	}
	if cluster.Replica != nil {
		// pgone's first reads must find the roles and database on the replica.
		if err := cluster.WaitReplicaCaughtUp(ctx); err != nil {
			return err
		}
	}

	host, port := cluster.Primary.Host, cluster.Primary.Port
	if o.target != targetDirect {
		p, err := startPgone(ctx, o, cluster, logger)
		if err != nil {
			return err
		}
		defer func() {
			if o.metricsFile != "" {
				if err := p.saveMetrics(o.metricsFile); err != nil {
					logger.Printf("saving pgone's metrics: %v", err)
				}
			}
			p.stop(logger)
		}()
		host, port = "127.0.0.1", p.port
	}
	if err := o.writeEnv(host, port); err != nil {
		return err
	}
	logger.Printf("ready: %s:%d (%s); serving until SIGTERM", host, port, o.target)
	<-ctx.Done()
	logger.Printf("stopping")
	return nil
}

// setupTestDatabase does what pgx's testsetup/postgresql_setup.sql does,
// minus what needs TLS, md5 or OAuth: pgtest's pg_hba takes SCRAM only over
// TCP, so every password role here is SCRAM.
func setupTestDatabase(ctx context.Context, c *pgtest.Cluster) error {
	roles := []string{mainUser, scramUser, "pgx_pw"}
	var sql []string
	for _, r := range roles {
		sql = append(sql, fmt.Sprintf(`CREATE USER %s WITH SUPERUSER PASSWORD '%s'`, r, testPassword))
	}
	// pgtype's aclitem test needs this role to exist.
	sql = append(sql, `CREATE USER " tricky, ' } "" \ test user " SUPERUSER PASSWORD 'secret'`,
		`CREATE DATABASE `+testDatabase)
	for _, stmt := range sql { // one by one: CREATE DATABASE refuses a transaction block
		if err := c.Exec(ctx, stmt); err != nil {
			return err
		}
	}
	conn, err := pgconn.Connect(ctx, c.Primary.DSN(pgtest.SuperUser, pgtest.SuperPassword, testDatabase))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", testDatabase, err)
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `CREATE EXTENSION hstore; CREATE EXTENSION ltree; CREATE DOMAIN uint64 AS numeric(20,0)`).ReadAll()
	if err != nil {
		return fmt.Errorf("set up %s: %w", testDatabase, err)
	}
	return nil
}

// pgxEnv is the PGX_TEST_* variables pgx's tests read.
func pgxEnv(host string, port int) [][2]string {
	dsn := func(user string, extra string) string {
		s := fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s", host, port, user, testPassword, testDatabase)
		if extra != "" {
			s += " " + extra
		}
		return s
	}
	return [][2]string{
		{"PGX_TEST_DATABASE", dsn(mainUser, "")},
		{"PGX_TEST_TCP_CONN_STRING", dsn(mainUser, "")},
		{"PGX_TEST_SCRAM_PASSWORD_CONN_STRING", dsn(scramUser, "channel_binding=disable")},
	}
}

// writeExports writes shell exports through a temp file and a rename, so a
// reader polling for the file never sees half of it.
func writeExports(path string, vars [][2]string) error {
	var b strings.Builder
	for _, kv := range vars {
		fmt.Fprintf(&b, "export %s='%s'\n", kv[0], kv[1])
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Clean(path))
}

// pgoneConfig is the YAML config for a pgone target.
func pgoneConfig(o upOptions, c *pgtest.Cluster, port, httpPort int) string {
	if o.suite == suiteRegress {
		return regressPgoneConfig(o, c, port, httpPort)
	}
	mode := "transaction"
	if o.target == targetSession {
		mode = "session"
	}
	var db strings.Builder
	// A fixed server login, as in `pgone demo`: pgone monitors replicas (and
	// so splits reads) only for databases that have one.
	fmt.Fprintf(&db, "    host: %s\n    port: %d\n    user: %s\n    password: %s\n",
		c.Primary.Host, c.Primary.Port, mainUser, testPassword)
	if c.Replica != nil {
		fmt.Fprintf(&db, "    replicas:\n      - host: %s\n        port: %d\n", c.Replica.Host, c.Replica.Port)
		if o.consistency != "" {
			fmt.Fprintf(&db, "    consistency: %s\n", o.consistency)
		}
	}
	return fmt.Sprintf(`# written by scripts/pgxsuite for target %[1]s
listen: "127.0.0.1:%[2]d"
auth_method: scram-sha-256
limits:
  shutdown_timeout: 5s
databases:
  %[3]s:
%[4]susers:
  %[5]s: {password: %[7]s}
  %[6]s: {password: %[7]s}
pool:
  mode: %[8]s
  pool_size: %[9]d
  server_tls: {sslmode: disable}
log:
  level: info
http:
  listen: "127.0.0.1:%[10]d"
`, o.target, port, testDatabase, db.String(), mainUser, scramUser, testPassword, mode, o.poolSize, httpPort)
}
