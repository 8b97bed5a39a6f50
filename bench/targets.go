package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pgone/pgone/bench/proc"
	"github.com/pgone/pgone/internal/pgtest"
)

// PoolMode is the pooling mode a workload asks of the poolers that have one.
type PoolMode string

// Pool modes.
const (
	Transaction PoolMode = "transaction"
	Session     PoolMode = "session"
	// Split is transaction mode with reads split among primary and replica
	// where the target can: pgone's split database (consistency
	// read_your_writes), pgpool's load balancing (on for every workload).
	// PgBouncer and direct cannot split: they run it on the primary.
	Split PoolMode = "split"
)

// Target is one thing the workloads run against: the primary itself or a
// pooler in front of it.
type Target struct {
	Name string
	Port int
	// Setup describes the target's configuration for the results header.
	Setup string
	// db returns the database name a client uses for a workload in mode and
	// the mode the target really runs it in ("" when it has none).
	db func(mode PoolMode) (dbname, runsAs string)
	// cache: pgone with the result cache on (cachetarget.go).
	cache bool
	// proc is the proxy process; nil for direct.
	proc *proc.Child
	stop func() error
}

// proxyPid returns the pid whose process tree is the proxy, or 0 (direct).
func (t *Target) proxyPid() int {
	if t.proc == nil {
		return 0
	}
	return t.proc.Pid()
}

// alive reports an error if the proxy process has exited.
func (t *Target) alive() error {
	if t.proc != nil && t.proc.Exited() {
		return fmt.Errorf("%s exited (%v)\n%s", t.Name, t.proc.Err(), t.proc.LogTail())
	}
	return nil
}

// startTargets starts every pooler in env.targetNames order; direct needs
// nothing. Each started target's stop is registered in env.cleanup.
func startTargets(ctx context.Context, env *Env) error {
	for _, name := range env.targetNames {
		var (
			t   *Target
			err error
		)
		switch {
		case name == "direct":
			t = &Target{
				Name:  "direct",
				Port:  env.cluster.Primary.Port,
				Setup: fmt.Sprintf("the primary itself, port %d, max_connections=%s", env.cluster.Primary.Port, env.pgSettings["max_connections"]),
				db:    func(PoolMode) (string, string) { return env.db, "" },
			}
		case name == "pgbouncer":
			t, err = startPgbouncer(ctx, env)
		case name == "pgpool":
			t, err = startPgpool(ctx, env)
		case name == "pgone" || strings.HasPrefix(name, "pgone-"):
			t, err = startPgone(ctx, env, name)
		case strings.HasPrefix(name, "relay-"):
			t, err = startRelay(ctx, env, name)
		default:
			err = fmt.Errorf("unknown target %q", name)
		}
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		if t.stop != nil {
			env.onCleanup("stop "+t.Name, t.stop)
		}
		env.targets = append(env.targets, t)
		env.logf("started %s: %s", t.Name, t.Setup)
	}
	return nil
}

// startPgbouncer runs one pgbouncer with two databases over the same server
// database, one per pool mode, so each workload gets the mode it asks for.
func startPgbouncer(ctx context.Context, env *Env) (*Target, error) {
	bin, err := findProgram("pgbouncer", "", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(env.dir, "pgbouncer")
	if err := env.acct.mkdir(dir); err != nil {
		return nil, err
	}
	dbs := map[PoolMode]string{Transaction: env.db + "_tx", Session: env.db + "_session", Split: env.db + "_tx"}
	users := fmt.Sprintf("%q %q\n", env.user, env.password)
	if err := env.acct.writeFile(filepath.Join(dir, "userlist.txt"), users); err != nil {
		return nil, err
	}
	t := &Target{
		Name: "pgbouncer",
		Setup: fmt.Sprintf("PgBouncer, database %s in transaction mode and %s in session mode, default_pool_size=%d each, max_client_conn=%d, server_idle_timeout off, server_lifetime 24h",
			dbs[Transaction], dbs[Session], env.poolSize, env.maxClients),
		db: func(mode PoolMode) (string, string) {
			if mode == Split {
				return dbs[mode], "transaction (no split: primary only)"
			}
			return dbs[mode], string(mode)
		},
	}
	conf := func(port int) string {
		p := env.cluster.Primary.Port
		return fmt.Sprintf(`[databases]
%s = host=127.0.0.1 port=%d dbname=%s pool_mode=transaction
%s = host=127.0.0.1 port=%d dbname=%s pool_mode=session

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
listen_backlog = 4096
unix_socket_dir =
auth_type = scram-sha-256
auth_file = %s
max_client_conn = %d
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 0
server_tls_sslmode = disable
server_idle_timeout = 0
server_lifetime = 86400
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
stats_period = 600
`, dbs[Transaction], p, env.db, dbs[Session], p, env.db, port,
			filepath.Join(dir, "userlist.txt"), env.maxClients, env.poolSize)
	}
	err = startOnFreePort(ctx, env, t, func(port int) (*proc.Child, error) {
		ini := filepath.Join(dir, "pgbouncer.ini")
		if err := env.acct.writeFile(ini, conf(port)); err != nil {
			return nil, err
		}
		return proc.Start("pgbouncer", env.acct.command(dir, bin, ini), filepath.Join(dir, "pgbouncer.log"), syscall.SIGTERM)
	}, dbs[Transaction])
	if err != nil {
		return nil, err
	}
	// SIGTERM: immediate shutdown (SIGINT would wait for clients).
	t.stop = func() error { return t.proc.Stop(syscall.SIGTERM, 10*time.Second) }
	return t, nil
}

// startPgpool runs pgpool-II in streaming replication mode over the primary
// and the replica with load balancing on and the query cache off.
func startPgpool(ctx context.Context, env *Env) (*Target, error) {
	bin, err := findProgram("pgpool", "", "/usr/sbin")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(env.dir, "pgpool")
	if err := env.acct.mkdir(dir); err != nil {
		return nil, err
	}
	passwd := fmt.Sprintf("%s:TEXT%s\n%s:TEXT%s\n", env.user, env.password, pgtest.SuperUser, pgtest.SuperPassword)
	for name, content := range map[string]string{"pool_passwd": passwd, "pcp.conf": "", "pool_hba.conf": ""} {
		if err := env.acct.writeFile(filepath.Join(dir, name), content); err != nil {
			return nil, err
		}
	}
	t := &Target{
		Name: "pgpool",
		Setup: fmt.Sprintf("pgpool-II, streaming replication mode over primary and replica, load_balance_mode=on, memory_cache_enabled=off, num_init_children=%d, max_pool=1, connection_life_time and child_life_time off",
			env.poolSize),
		db: func(PoolMode) (string, string) { return env.db, "" },
	}
	conf := func(port, pcpPort int) string {
		return fmt.Sprintf(`backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = %d
socket_dir = '%[3]s'
pcp_listen_addresses = '127.0.0.1'
pcp_port = %[2]d
pcp_socket_dir = '%[3]s'
wd_ipc_socket_dir = '%[3]s'
pid_file_name = '%[3]s/pgpool.pid'
logdir = '%[3]s'
listen_backlog_multiplier = %[4]d
num_init_children = %[5]d
max_pool = 1
reserved_connections = 0
child_life_time = 0
child_max_connections = 0
connection_life_time = 0
client_idle_limit = 0
connection_cache = on
backend_hostname0 = '127.0.0.1'
backend_port0 = %[6]d
backend_weight0 = 1
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = %[7]d
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
enable_pool_hba = off
pool_passwd = 'pool_passwd'
allow_clear_text_frontend_auth = off
ssl = off
load_balance_mode = on
sr_check_period = 0
sr_check_user = '%[8]s'
sr_check_password = '%[9]s'
health_check_period = 0
failover_on_backend_error = off
memory_cache_enabled = off
log_destination = 'stderr'
log_min_messages = warning
log_connections = off
log_disconnections = off
`, port, pcpPort, dir, 4096/env.poolSize+1, env.poolSize,
			env.cluster.Primary.Port, env.cluster.Replica.Port, pgtest.SuperUser, pgtest.SuperPassword)
	}
	err = startOnFreePort(ctx, env, t, func(port int) (*proc.Child, error) {
		pcpPort, err := pgtest.FreePort()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "pgpool.conf")
		if err := env.acct.writeFile(path, conf(port, pcpPort)); err != nil {
			return nil, err
		}
		os.Remove(filepath.Join(dir, "pgpool_status")) // a stale status could mark a node down
		cmd := env.acct.command(dir, bin, "-n", "-f", path, "-F", filepath.Join(dir, "pcp.conf"), "-a", filepath.Join(dir, "pool_hba.conf"))
		// SIGQUIT is pgpool's immediate shutdown: it also ends its children.
		return proc.Start("pgpool", cmd, filepath.Join(dir, "pgpool.log"), syscall.SIGQUIT)
	}, env.db)
	if err != nil {
		return nil, err
	}
	// SIGQUIT: immediate shutdown; a fast one can take long with 300 children.
	t.stop = func() error { return t.proc.Stop(syscall.SIGQUIT, 15*time.Second) }
	return t, nil
}

// startPgone runs bin/pgone with a generated config. The name "pgone" runs
// the first of env.pgoneModes; "pgone-<mode>" runs that mode.
func startPgone(ctx context.Context, env *Env, name string) (*Target, error) {
	mode := PoolMode(strings.TrimPrefix(name, "pgone-"))
	bin := env.pgoneBin
	if name == "pgone" {
		mode = env.pgoneModes[0]
	}
	// pgone-procsN: the measured binary with GOMAXPROCS=N (issue 14: one
	// thread, as PgBouncer, against Go's default of one per core).
	procs := ""
	if n, ok := strings.CutPrefix(name, "pgone-procs"); ok {
		mode, procs = env.pgoneModes[0], n
	}
	// pgone-cache: the result cache in memory; pgone-cache-redis: the same
	// with its shared part in Redis (L2, versions, the bus, leases), where
	// every L1 hit makes one Redis call (the fence).
	withCache := name == "pgone-cache" || name == "pgone-cache-redis"
	redisAddr := ""
	if name == "pgone-cache-redis" {
		redisAddr = env.redis.Addr
	}
	if withCache {
		mode = env.pgoneModes[0]
	}
	if name == "pgone-base" {
		// The same config under an earlier build: a before/after pair
		// (parseFlags made sure -pgone-base names it).
		mode, bin = env.pgoneModes[0], env.pgoneBaseBin
	}
	if mode != Session && mode != Transaction {
		return nil, fmt.Errorf("pool mode %q: want session or transaction", mode)
	}
	dir := filepath.Join(env.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cacheSetup := ""
	if withCache {
		cacheSetup = fmt.Sprintf("; result cache on: cache.mode rules for %s, other cache settings default", strings.Join(cachedTables, ", "))
		if redisAddr != "" {
			cacheSetup += ", cache.redis.address " + redisAddr + " (one instance)"
		}
	}
	t := &Target{
		Name:  name,
		cache: withCache,
		Setup: fmt.Sprintf("%s (%s)%s, pool_mode=%s, pool_size=%d, max_server_connections=%d (3 pools), database %s with consistency primary_only (no split) and %s_split with the read/write split on (read_your_writes, transaction mode only), server_idle_timeout and server_lifetime 24h, sslmode=disable to the servers, log level warn%s",
			bin, versionOf(bin, env), procsNote(procs), mode, env.poolSize, 3*env.poolSize, env.db, env.db, cacheSetup),
		db: func(w PoolMode) (string, string) {
			if w != Split {
				return env.db, string(mode)
			}
			if mode != Transaction {
				return env.db + "_split", string(mode) + " (no split: transaction mode only)"
			}
			return env.db + "_split", "transaction, split"
		},
	}
	err := startOnFreePort(ctx, env, t, func(port int) (*proc.Child, error) {
		httpPort, err := pgtest.FreePort()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, "pgone.yaml")
		if err := os.WriteFile(path, []byte(pgoneConfig(env, mode, port, httpPort, withCache, redisAddr)), 0o600); err != nil {
			return nil, err
		}
		cmd := env.acct.command(dir, bin, "serve", "--config", path)
		cmd.SysProcAttr.Credential = nil // pgone may run as root
		if procs != "" {
			cmd.Env = append(cmd.Env, "GOMAXPROCS="+procs)
		}
		return proc.Start(name, cmd, filepath.Join(dir, "pgone.log"), syscall.SIGTERM)
	}, env.db)
	if err != nil {
		return nil, err
	}
	t.stop = func() error { return t.proc.Stop(syscall.SIGTERM, 15*time.Second) }
	return t, nil
}

// pgoneConfig is the generated config; withCache turns the result cache
// on. The bench user is an admin too, to read SHOW CACHE.
func pgoneConfig(env *Env, mode PoolMode, port, httpPort int, withCache bool, redisAddr string) string {
	cache := ""
	if withCache {
		cache = cacheConfig(redisAddr)
	}
	// The database entry: a name, its consistency (primary_only: no split).
	db := func(name string, consistency string) string {
		return fmt.Sprintf(`  %s:
    host: 127.0.0.1
    port: %d
    dbname: %s
    user: %s
    password: %q
    pool_size: %d
    pool_mode: %s
    consistency: %s
    replicas:
      - host: 127.0.0.1
        port: %d
`, name, env.cluster.Primary.Port, env.db, env.user, env.password, env.poolSize, mode, consistency, env.cluster.Replica.Port)
	}
	return fmt.Sprintf(`# generated by pgone bench
listen: "127.0.0.1:%d"
auth_method: scram-sha-256
limits:
  max_client_conn: %d
  shutdown_timeout: 2s
databases:
%s%s%s%s`, port, env.maxClients, db(env.db, "primary_only"), db(env.db+"_split", "read_your_writes"),
		// Three pools of pool_size each (bench; bench_split's primary and
		// replica) under the global cap, as PgBouncer's pools have no
		// common cap: no pool takes another's connections between cells.
		pgoneConfigTail(env, string(mode), env.poolSize, 3*env.poolSize, httpPort), cache)
}

// pgoneConfigTail is the part of a generated pgone config after its
// databases: the bench user (an admin too), the pool, log and http.
func pgoneConfigTail(env *Env, mode string, poolSize, maxServers, httpPort int) string {
	return fmt.Sprintf(`users:
  %s:
    password: %q
pool:
  mode: %s
  pool_size: %d
  max_server_connections: %d
  server_idle_timeout: 24h
  server_lifetime: 24h
  server_tls:
    sslmode: disable
log:
  level: warn
http:
  listen: "127.0.0.1:%d"
admin_users: [%s]
`, env.user, env.password, mode, poolSize, maxServers, httpPort, env.user)
}

// startOnFreePort starts a target on a free port and waits until a client
// can log in to db through it (see proc.StartOnFreePort).
func startOnFreePort(ctx context.Context, env *Env, t *Target, start func(port int) (*proc.Child, error), db string) error {
	dsn := func(port int) string { return env.dsn(port, db) }
	c, port, err := proc.StartOnFreePort(ctx, start, dsn, 60*time.Second)
	if err != nil {
		return err
	}
	t.Port, t.proc = port, c
	return nil
}

// versionOf is the version line of a pgone binary: the measured one's is
// known; pgone-base's is asked.
func versionOf(bin string, env *Env) string {
	if bin == env.pgoneBin {
		return env.versions.pgone
	}
	return proc.FirstLine(context.Background(), bin, "version")
}

// procsNote describes a GOMAXPROCS setting for a target's Setup line.
func procsNote(procs string) string {
	if procs == "" {
		return ""
	}
	return " with GOMAXPROCS=" + procs
}
