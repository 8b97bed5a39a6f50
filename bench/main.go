package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pgone/pgone/internal/pgtest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

// options are the command-line flags.
type options struct {
	quick        bool
	out          string
	record       bool
	reps         int
	duration     time.Duration
	scale        int
	poolSize     int
	targets      string
	pgoneModes   string
	pgoneBin     string
	pgoneBaseBin string
	workloads    string
	clients      string
	keep         bool
	render       string
	suite        string
	seedRows     int
	tiny         bool
	// isolateDirect closes the poolers' server connections before each
	// direct cell (see isolateDirect); off only to show why it is needed.
	isolateDirect bool
	// durationSet: -duration was given (the tuner suite has its own default).
	durationSet bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&o.quick, "quick", false, "quick run: fewer cells, shorter runs (about 4½ minutes)")
	fs.StringVar(&o.out, "out", "bench/results", "directory for latest.md, latest.svg and latest.json")
	fs.BoolVar(&o.record, "record", false, "also write <date>-<mode>.md and .svg in -out, to commit a notable run")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of every cell (the median is reported); at least 3 for quotable numbers")
	fs.DurationVar(&o.duration, "duration", 0, "length of each pgbench run, connection time excluded (default 4s, -quick 2s)")
	fs.IntVar(&o.scale, "scale", 0, "pgbench scale factor (default 10)")
	fs.IntVar(&o.poolSize, "pool-size", 0, "server connections per pool, the same for every pooler (default 20, as PgBouncer is usually deployed; 300 for the second table)")
	fs.StringVar(&o.targets, "targets", "", "targets in interleaving order: direct, pgbouncer, pgpool, pgone, pgone-<mode>, pgone-cache (pgone with the result cache on), pgone-cache-redis (the same with cache.redis on the bench's redis-server), pgone-procsN (pgone with GOMAXPROCS=N), relay-goroutine, relay-goroutine-raw, relay-epoll, relay-epoll-raw, relay-epoll2, relay-epoll-raw2 (bench/relaycore: bare byte relays, the floor of each socket core), relay-txpool (bench/relaycore: the least transaction pooling, on a raw epoll loop) (default direct,pgbouncer,pgpool,pgone; -suite cache: direct,pgbouncer,pgone,pgone-cache,pgone-cache-redis; seed and tuner: direct,pgbouncer,pgone,pgone-cache)")
	fs.StringVar(&o.suite, "suite", "", "workloads to run when -workloads names none: \"\" (the pooler comparison), cache (issue 13: the result cache), seed (issue 17: the seed's workloads and targets) or tuner (issue 15: a wrong static config, the same tuned, and a sweep of static ones; see tunersuite.go)")
	fs.IntVar(&o.seedRows, "seed-rows", 0, "rows of the seed's events table (documents get a twentieth, JSON documents a tenth; default 2000000)")
	fs.BoolVar(&o.tiny, "tiny", false, "a smoke run, not a measurement: scale 1, 20000 seed rows, 1s runs, 1 rep, 2 clients per cell (flags given explicitly win)")
	fs.StringVar(&o.pgoneModes, "pgone-modes", "transaction", "pgone pool modes to measure: one mode names the target pgone, several make a target pgone-<mode> each")
	fs.StringVar(&o.pgoneBin, "pgone", "bin/pgone", "pgone binary to measure (make build)")
	fs.StringVar(&o.pgoneBaseBin, "pgone-base", "", "a second pgone binary (e.g. built from an earlier commit), measured as target pgone-base (name it in -targets) in the first of -pgone-modes, interleaved with the others: before/after in one run")
	fs.StringVar(&o.workloads, "workloads", "", "comma-separated workload names to run (default all)")
	fs.StringVar(&o.clients, "clients", "", "comma-separated client counts to use for every selected workload instead of its own")
	fs.StringVar(&o.render, "render", "", "run nothing: rewrite the markdown and chart in -out from a saved latest.json")
	fs.BoolVar(&o.isolateDirect, "isolate-direct", true, "close every pooler's server connections before each direct cell, so PostgreSQL serves direct alone (false: measure direct beside them, to see the difference)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temp dir with the poolers' configs and logs (PostgreSQL's is removed)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.durationSet = set["duration"]
	if o.tiny {
		for name, apply := range map[string]func(){
			"scale":     func() { o.scale = 1 },
			"seed-rows": func() { o.seedRows = 20000 },
			"duration":  func() { o.duration = time.Second },
			"reps":      func() { o.reps = 1 },
			"clients":   func() { o.clients = "2" },
		} {
			if !set[name] {
				apply()
			}
		}
	}
	switch o.suite {
	case SuiteMain, SuiteCache, SuiteSeed, SuiteTuner:
	default:
		return o, fmt.Errorf("-suite: %q is not one of \"\", cache, seed, tuner", o.suite)
	}
	if o.targets == "" {
		o.targets = "direct,pgbouncer,pgpool,pgone"
		switch o.suite {
		case SuiteMain:
		case SuiteCache:
			o.targets = "direct,pgbouncer,pgone,pgone-cache,pgone-cache-redis"
		default:
			o.targets = "direct,pgbouncer,pgone,pgone-cache"
		}
	}
	if o.seedRows == 0 {
		o.seedRows = 2_000_000
	}
	if o.duration == 0 {
		// The full plan has 180 pgbench runs (15 cells, 4 targets, 3 reps)
		// besides warm-up, storms and idle clients, and 300 direct logins
		// can take 15s on a busy machine: 4s each keeps it under 40
		// minutes (6s took 43 minutes with one cell less).
		o.duration = 4 * time.Second
		if o.quick {
			o.duration = 2 * time.Second
		}
	}
	if o.duration < time.Second {
		return o, fmt.Errorf("-duration must be at least 1s")
	}
	if o.poolSize == 0 {
		o.poolSize = 20
	}
	if o.scale == 0 {
		o.scale = 10
	}
	if o.reps < 1 {
		return o, fmt.Errorf("-reps must be at least 1")
	}
	if slices.Contains(splitList(o.targets), "pgone-base") != (o.pgoneBaseBin != "") {
		return o, fmt.Errorf("-pgone-base BINARY and the target pgone-base in -targets go together (e.g. -targets pgbouncer,pgone-base,pgone)")
	}
	return o, nil
}

// Env is everything a run shares: the servers, the targets, the settings.
type Env struct {
	dir     string // temp dir, owned by acct
	acct    osAccount
	cluster *pgtest.Cluster
	redis   *pgtest.Redis

	pgbench  string
	pgoneBin string
	// pgoneBaseBin is the binary of target pgone-base, "" if none.
	pgoneBaseBin string
	threads      int // pgbench -j upper bound

	user, password, db string
	poolSize           int
	maxClients         int // the largest client count, for max_client_conn
	pgSettings         map[string]string
	duration           time.Duration
	reps               int
	idleStall          time.Duration
	isolateDirect      bool // see options.isolateDirect
	quietProcs         int  // the servers' processes with no client connected
	// connMsPerClient is pgbench's last initial connection time per client,
	// by "target/database"; see runPgbench.
	connMsPerClient map[string]float64

	targetNames []string
	pgoneModes  []PoolMode
	targets     []*Target
	versions    versions

	cleanups []cleanupStep
	began    time.Time
	out      io.Writer
}

type cleanupStep struct {
	name string
	fn   func() error
}

func (e *Env) logf(format string, args ...any) {
	el := time.Since(e.began).Round(time.Second)
	fmt.Fprintf(e.out, "bench [%s] %s\n", fmtDuration(el), fmt.Sprintf(format, args...))
}

// onCleanup registers fn to run at exit, in reverse order of registration.
func (e *Env) onCleanup(name string, fn func() error) {
	e.cleanups = append(e.cleanups, cleanupStep{name, fn})
}

// cleanup stops everything the run started. It is the one place that does,
// and runs on success, failure and Ctrl-C alike.
func (e *Env) cleanup() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		s := e.cleanups[i]
		if err := s.fn(); err != nil {
			e.logf("cleanup: %s: %v", s.name, err)
		}
	}
	e.cleanups = nil
}

func (e *Env) dsn(port int, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", port, e.user, e.password, db)
}

// serverPids returns the postmasters of the primary and the replica.
func (e *Env) serverPids() []int {
	return []int{e.cluster.Primary.Pid(), e.cluster.Replica.Pid()}
}

func run(args []string, stdout io.Writer) int {
	o, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if o.render != "" {
		rep, err := loadReport(o.render)
		if err == nil {
			o.quick = rep.Meta.Mode == "quick"
			var paths []string
			paths, err = writeResults(rep, o)
			fmt.Fprintln(stdout, "bench: wrote", strings.Join(paths, ", "))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		return 0
	}
	if o.suite == SuiteTuner {
		return runTuner(o, stdout)
	}
	plan, err := buildPlan(o.quick, o.suite, splitList(o.workloads))
	if err == nil && o.clients != "" {
		plan, err = withClients(plan, splitList(o.clients))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &Env{
		began:        time.Now(),
		out:          stdout,
		user:         "bench",
		password:     "bench",
		db:           "bench",
		poolSize:     o.poolSize,
		pgoneBin:     o.pgoneBin,
		pgoneBaseBin: o.pgoneBaseBin,
		duration:     o.duration,
		reps:         o.reps,
		threads:      max(2, runtime.NumCPU()),
		pgSettings:   map[string]string{"max_connections": "2000"},
		idleStall:    5 * time.Second,

		isolateDirect: o.isolateDirect,

		connMsPerClient: map[string]float64{},
	}
	if o.quick {
		env.idleStall = 2 * time.Second
	}
	for _, c := range plan {
		env.maxClients = max(env.maxClients, c.Clients)
	}
	env.maxClients = max(env.maxClients*2, 1000)
	for _, m := range splitList(o.pgoneModes) {
		env.pgoneModes = append(env.pgoneModes, PoolMode(m))
	}
	if len(env.pgoneModes) == 0 {
		env.pgoneModes = []PoolMode{Transaction}
	}
	// "pgone" is one target per mode: "pgone" alone, or pgone-<mode> each.
	for _, name := range splitList(o.targets) {
		if name != "pgone" || len(env.pgoneModes) == 1 {
			env.targetNames = append(env.targetNames, name)
			continue
		}
		for _, m := range env.pgoneModes {
			env.targetNames = append(env.targetNames, "pgone-"+string(m))
		}
	}
	defer env.cleanup()

	rep, err := benchmark(ctx, env, o, plan)
	if err != nil {
		if ctx.Err() != nil {
			env.logf("interrupted: stopping everything; no results written")
			return 130
		}
		env.logf("failed: %v", err)
		return 1
	}
	env.cleanup()
	rep.Meta.RunTime = time.Since(env.began)
	paths, err := writeResults(rep, o)
	if err != nil {
		env.logf("writing results: %v", err)
		return 1
	}
	env.logf("done in %s; wrote %s", fmtDuration(rep.Meta.RunTime.Round(time.Second)), strings.Join(paths, ", "))
	if failed := checksFailed(rep.Checks); len(failed) > 0 {
		for _, f := range failed {
			env.logf("CHECK FAILED: direct is not within %.0f%% of a lone pgbench run: %s", checkTolerance*100, f)
		}
		env.logf("the direct cells are not a fair reference; the ×direct ratios of this run are not to be quoted")
		return 3
	}
	return 0
}

// benchmark starts everything, runs the plan and returns the report.
func benchmark(ctx context.Context, env *Env, o options, plan []Cell) (*Report, error) {
	if _, err := os.Stat(env.pgoneBin); err != nil {
		return nil, fmt.Errorf("pgone binary: %w (run make build)", err)
	}
	// Children run in their own directories.
	if abs, err := filepath.Abs(env.pgoneBin); err == nil {
		env.pgoneBin = abs
	}
	if env.pgoneBaseBin != "" {
		if _, err := os.Stat(env.pgoneBaseBin); err != nil {
			return nil, fmt.Errorf("pgone-base binary: %w", err)
		}
		if abs, err := filepath.Abs(env.pgoneBaseBin); err == nil {
			env.pgoneBaseBin = abs
		}
	}
	if limit, err := raiseFileLimit(); err != nil {
		env.logf("warning: cannot raise the open-file limit: %v", err)
	} else if limit < uint64(env.maxClients)+1000 {
		env.logf("warning: open-file limit %d is below %d clients plus server connections; raise ulimit -Hn", limit, env.maxClients)
	}
	bindir, err := pgtest.BinDir()
	if err != nil {
		return nil, err
	}
	if env.pgbench, err = findProgram("pgbench", bindir); err != nil {
		return nil, err
	}
	if env.acct, err = lookupAccount(); err != nil {
		return nil, err
	}
	env.versions = collectVersions(ctx, bindir, env.pgoneBin)

	dir, err := os.MkdirTemp("", "pgone-bench-")
	if err != nil {
		return nil, err
	}
	env.dir = dir
	env.onCleanup("remove "+dir, func() error {
		if o.keep {
			env.logf("kept %s", dir)
			return nil
		}
		return os.RemoveAll(dir)
	})
	if err := env.acct.chown(dir); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}

	env.logf("starting PostgreSQL primary and streaming replica (%d cells × %d reps × %d targets planned)", len(plan), env.reps, len(env.targetNames))
	cluster, err := pgtest.StartCluster(ctx, pgtest.Options{Replica: true, Settings: env.pgSettings})
	if err != nil {
		return nil, err
	}
	env.cluster = cluster
	env.onCleanup("stop PostgreSQL", cluster.Stop)
	env.logf("primary on port %d, replica on port %d", cluster.Primary.Port, cluster.Replica.Port)

	redis, err := pgtest.StartRedis(ctx)
	if err != nil {
		return nil, err
	}
	env.redis = redis
	env.onCleanup("stop redis-server", redis.Stop)
	env.logf("redis-server on %s", redis.Addr)

	setup := fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'; CREATE DATABASE %s OWNER %s", env.user, env.password, env.db, env.user)
	for _, sql := range strings.Split(setup, "; ") {
		if err := cluster.Exec(ctx, sql); err != nil {
			return nil, err
		}
	}
	env.logf("pgbench -i -s %d", o.scale)
	if err := pgbenchInit(ctx, env, o.scale); err != nil {
		return nil, err
	}
	if err := prepareData(ctx, env, plan, o.seedRows); err != nil {
		return nil, err
	}
	if err := cluster.WaitReplicaCaughtUp(ctx); err != nil {
		return nil, err
	}

	// The yardstick of the direct check: before any pooler exists,
	// nothing else is connected to the primary.
	lone := map[string][]float64{}
	env.quietProcs = serverProcs(env)
	checking := slices.Contains(env.targetNames, "direct")
	if checking {
		runLoneBaselines(ctx, env, plan, "start", lone)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}

	if err := startTargets(ctx, env); err != nil {
		return nil, err
	}
	warmUp(ctx, env, plan)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}

	rep := newReport(env, o, plan)
	if err := runPlan(ctx, env, plan, rep); err != nil {
		return nil, err
	}
	if checking && len(checkWorkloads(plan)) > 0 {
		if err := stopPoolers(ctx, env); err != nil {
			return nil, err
		}
		runLoneBaselines(ctx, env, plan, "end", lone)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	rep.judge(plan, lone)
	return rep, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm%02ds", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
	}
	if d >= time.Minute {
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}
