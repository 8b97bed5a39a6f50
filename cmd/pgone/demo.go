package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pgone/pgone/cache"
	"github.com/pgone/pgone/config"
	"github.com/pgone/pgone/internal/pgtest"
	"github.com/pgone/pgone/pool"
	"github.com/pgone/pgone/proxy"
)

// cmdDemo starts a throwaway primary and replica, puts pgone in front of
// them and serves until Ctrl-C, then removes everything it made.
func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("port", 6432, "client port of pgone")
	var lf logFlags
	lf.register(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := lf.logger(stderr, config.Log{Format: config.LogText, Level: config.LevelInfo})
	if err != nil {
		fmt.Fprintln(stderr, "pgone demo:", err)
		return 2
	}

	// Ctrl-C during the cluster start must still clean up.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	fmt.Fprintln(stdout, "pgone demo: starting a PostgreSQL primary and streaming replica...")
	cluster, err := pgtest.StartCluster(ctx, pgtest.Options{
		Replica: true,
		Logf:    func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) },
	})
	stop()
	if err != nil {
		fmt.Fprintln(stderr, "pgone demo:", err)
		return 1
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			log.Warn("stopping the demo cluster", "err", err)
		}
		fmt.Fprintln(stdout, "pgone demo: stopped PostgreSQL and removed", cluster.Dir)
	}()
	setupCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, sql := range []string{`CREATE ROLE demo LOGIN PASSWORD 'demo'`, `CREATE DATABASE demo OWNER demo`} {
		if err := cluster.Exec(setupCtx, sql); err != nil {
			fmt.Fprintln(stderr, "pgone demo: creating the demo database:", err)
			return 1
		}
	}

	cfg := demoConfig(cluster, *port)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "pgone demo: internal config error:", err)
		return 1
	}
	ready := func(addr string) {
		dsn := fmt.Sprintf("postgres://demo:demo@127.0.0.1:%d/demo?sslmode=disable", *port)
		fmt.Fprintf(stdout, `
pgone demo is ready (transaction pooling; primary on port %d, replica on port %d;
reads go to the replica, writes to the primary, each client reads its own writes;
the result cache is on for pgbench's tables).

  connection string: %s
  psql:              psql "%s"
  pgbench:           PGPASSWORD=demo pgbench -h 127.0.0.1 -p %d -U demo -i demo && PGPASSWORD=demo pgbench -h 127.0.0.1 -p %d -U demo -T 10 -c 10 -M extended demo
  admin console:     psql -h 127.0.0.1 -p %d -U admin pgone   (password admin; then SHOW POOLS; SHOW REPLICAS; SHOW CACHE;)
  metrics:           http://%s/metrics
  see a cache hit:   after pgbench -i, run twice in psql: SELECT sum(abalance) FROM pgbench_accounts;
                     the second answer comes from the cache (SHOW CACHE: hits); an UPDATE through pgone
                     invalidates it; any other read can opt in with /* pgone:cache ttl=30s */

Press Ctrl-C to stop and remove everything.
`, cluster.Primary.Port, cluster.Replica.Port, dsn, dsn, *port, *port, *port, cfg.HTTP.Listen)
	}
	if err := serve(cfg, nil, log, ready, serveOptions{optionalHTTP: true}); err != nil {
		fmt.Fprintln(stderr, "pgone demo:", err)
		return 1
	}
	return 0
}

func demoConfig(cluster *pgtest.Cluster, port int) *config.Config {
	cfg := &config.Config{
		Proxy: proxy.Config{
			Listen: fmt.Sprintf("127.0.0.1:%d", port),
			Databases: map[string]proxy.Database{
				"demo": {
					Host: cluster.Primary.Host, Port: cluster.Primary.Port,
					User: "demo", Password: "demo",
					Replicas: []proxy.Replica{{Host: cluster.Replica.Host, Port: cluster.Replica.Port}},
				},
			},
			Users: map[string]proxy.User{
				"demo":  {Password: "demo"},
				"admin": {Password: "admin"},
			},
			AdminUsers: []string{"admin"},
		},
		Pool: pool.Config{Mode: pool.ModeTransaction, PoolSize: 20, ServerTLS: pool.ServerTLS{SSLMode: "disable"}},
		// The result cache on for pgbench's tables; other reads can ask for
		// it with /* pgone:cache ttl=30s */.
		Cache: cache.Config{Mode: cache.ModeRules, Rules: []cache.Rule{
			{Table: "pgbench_accounts", TTL: 30 * time.Second},
			{Table: "pgbench_branches", TTL: 30 * time.Second},
			{Table: "pgbench_tellers", TTL: 30 * time.Second},
		}},
	}
	cfg.Defaults()
	cfg.HTTP.Pprof = true // a throwaway setup on loopback: profiling helps
	cfg.Proxy.Limits.ShutdownTimeout = 5 * time.Second
	return cfg
}
