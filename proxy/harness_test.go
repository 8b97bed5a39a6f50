package proxy_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// cluster is the primary (and replica) every integration test in this
// package runs against. It is started once in TestMain.
var cluster *pgtest.Cluster

// Roles on the cluster. appdb is owned by app; pgone logs in to the server
// as app for every client user unless a test says otherwise.
const (
	appUser     = "app"
	appPassword = "app-secret"
	appDB       = "appdb"
)

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	// wal_level=logical: the cache's invalidation stream (cache.invalidation: logical) needs it.
	c, err := pgtest.StartCluster(ctx, pgtest.Options{Replica: true, Settings: map[string]string{"wal_level": "logical",
		"max_prepared_transactions": "10"}}) // TestCacheCommitPreparedInvalidates
	if err != nil {
		cancel()
		fmt.Fprintln(os.Stderr, "proxy tests need PostgreSQL:", err)
		os.Exit(1)
	}
	for _, sql := range []string{
		fmt.Sprintf(`CREATE ROLE %s LOGIN PASSWORD '%s'`, appUser, appPassword),
		fmt.Sprintf(`CREATE DATABASE %s OWNER %s`, appDB, appUser),
	} {
		if err := c.Exec(ctx, sql); err != nil {
			cancel()
			c.Stop()
			fmt.Fprintln(os.Stderr, "proxy tests setup:", err)
			os.Exit(1)
		}
	}
	cancel()
	cluster = c
	code := m.Run()
	if err := c.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping cluster:", err)
	}
	os.Exit(code)
}

// testProxy is a pgone server running in the test process.
type testProxy struct {
	Host  string
	Port  int
	Cfg   *config.Config
	Srv   *proxy.Server
	Pools *pool.Manager
}

// Client users configured by baseConfig, one per authentication method.
// Each password is the user name + "-pw".
var clientUsers = map[string]proxy.User{
	"app":       {Password: appPassword},
	"scramuser": {Password: "scramuser-pw", AuthMethod: "scram-sha-256"},
	"md5user":   {Password: "md5user-pw", AuthMethod: "md5"},
	"pwuser":    {Password: "pwuser-pw", AuthMethod: "password"},
	"trustuser": {AuthMethod: "trust"},
}

// baseConfig is a config for a proxy in front of the test cluster: appdb
// and a "*" entry on the primary, logging in to the server as app.
func baseConfig() *config.Config {
	users := map[string]proxy.User{}
	for k, v := range clientUsers {
		users[k] = v
	}
	cfg := &config.Config{
		Proxy: proxy.Config{
			Listen: "127.0.0.1:0",
			Databases: map[string]proxy.Database{
				appDB: {Host: cluster.Primary.Host, Port: cluster.Primary.Port, User: appUser, Password: appPassword},
				"*":   {Host: cluster.Primary.Host, Port: cluster.Primary.Port, User: appUser, Password: appPassword},
			},
			Users: users,
		},
		Pool: pool.Config{ServerTLS: pool.ServerTLS{SSLMode: "disable"}},
	}
	cfg.Defaults()
	return cfg
}

// startProxy starts pgone with baseConfig changed by mutate, and stops it
// when the test ends.
func startProxy(t testing.TB, mutate func(*config.Config)) *testProxy {
	t.Helper()
	return serveProxy(t, validConfig(t, baseConfig(), mutate), testLog(), nil)
}

// validConfig is cfg changed by mutate, validated as pgone serve would.
func validConfig(t testing.TB, cfg *config.Config, mutate func(*config.Config)) *config.Config {
	t.Helper()
	if mutate != nil {
		mutate(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	return cfg
}

// testLog discards pgone's log, or shows it at debug level under -v.
func testLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// serveProxy builds pgone from cfg, runs before (if any) on it once it
// listens and before it serves (where cmd wires metrics and hooks), and
// stops it when the test ends.
func serveProxy(t testing.TB, cfg *config.Config, log *slog.Logger, before func(*testProxy)) *testProxy {
	t.Helper()
	pools := pool.NewManager(cfg.Pool, log)
	srv, err := proxy.New(cfg.Proxy, cfg.Pool, pools, log)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	p := &testProxy{Host: "127.0.0.1", Port: addr.Port, Cfg: cfg, Srv: srv, Pools: pools}
	if before != nil {
		before(p)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		pools.Close()
	})
	return p
}

// DSN is a keyword/value connection string to the proxy.
func (p *testProxy) DSN(user, password, db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s password=%s dbname=%s sslmode=disable", p.Host, p.Port, user, password, db)
}

// AppDSN is the DSN of the app user on appdb.
func (p *testProxy) AppDSN() string { return p.DSN(appUser, appPassword, appDB) }

// Connect opens a pgx connection through the proxy as app on appdb.
func (p *testProxy) Connect(t testing.TB) *pgx.Conn {
	t.Helper()
	return connect(t, p.AppDSN())
}

// connect opens a pgx connection and closes it at the end of the test.
func connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect %q: %v", dsn, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// directDSN is the DSN of the app user on appdb straight to the primary.
func directDSN() string { return cluster.Primary.DSN(appUser, appPassword, appDB) }

// testCtx is a context bounded for one test step.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// poolsOf adds up the server connections (open, idle) and the clients
// (waiting, canceling) of every pool pgone has for db.
func poolsOf(p *testProxy, db string) pool.Stats {
	var sum pool.Stats
	for _, s := range p.Pools.Stats() {
		if s.Key.Database == db {
			sum.Open += s.Open
			sum.Idle += s.Idle
			sum.Waiting += s.Waiting
			sum.Canceling += s.Canceling
		}
	}
	return sum
}
